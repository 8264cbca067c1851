"""fcsim network relay: the guest's eth0 (a TAP in the guest's netns,
configured from ip=) relayed to the slot's TAP in fcsim's own netns, as
Firecracker relays TAP <-> virtio-net. Runs fcsim inside a test netns."""
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fcsim"))
from helpers import Fcsim, make_image, require_root_and_binary, unique, wait_until  # noqa: E402

GUEST_IP = "169.254.0.21"
HOST_IP = "169.254.0.22"
BOOT_ARGS = f"console=ttyS0 reboot=k panic=1 ip={GUEST_IP}::{HOST_IP}:255.255.255.252::eth0:off"
MAC = "06:00:AC:10:00:02"

CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 5000), timeout=float(sys.argv[2]))
s.sendall(b"ping over the relay")
data = b""
while len(data) < 19:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print(data.decode())
"""


def ip(*args):
    subprocess.run(["ip", *args], check=True)


@pytest.fixture
def netns():
    require_root_and_binary()
    ns, tap = unique("fcsimt"), unique("fct")
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
        ip("-n", ns, "addr", "add", f"{HOST_IP}/30", "dev", tap)
        ip("-n", ns, "link", "set", tap, "up")
        yield ns, tap
    finally:
        subprocess.run(["ip", "netns", "delete", ns])


def client(ns, timeout=5.0):
    return subprocess.run(["ip", "netns", "exec", ns, "/usr/bin/python3", "-c", CLIENT, GUEST_IP,
                           str(timeout)], capture_output=True, text=True, timeout=timeout + 10)


def test_tcp_from_the_slot_netns_reaches_the_guest(netns):
    ns, tap = netns
    vm = Fcsim(netns=ns)
    try:
        vm.configure(make_image(vm.dir), boot_args=BOOT_ARGS, nets=[(tap, MAC)])
        vm.start()
        pid = vm.guest_pid()
        # The guest sees eth0 with the MAC and address from the API/boot args.
        with open(f"/proc/{pid}/root/sys/class/net/eth0/address") as f:
            assert f.read().strip() == MAC.lower()
        ok = wait_until(lambda: client(ns, 1.0).stdout.strip() == "ping over the relay", timeout=10,
                        step=0.1)
        assert ok, client(ns, 1.0)

        # Paused: no frames move; resumed: traffic flows again.
        vm.ok("PATCH", "/vm", {"state": "Paused"})
        assert client(ns, 0.5).returncode != 0
        vm.ok("PATCH", "/vm", {"state": "Resumed"})
        assert wait_until(lambda: client(ns, 1.0).stdout.strip() == "ping over the relay",
                          timeout=10, step=0.1)
    finally:
        vm.close()


def test_tap_held_by_another_vmm_is_busy(netns):
    ns, tap = netns
    a = Fcsim(netns=ns)
    b = Fcsim(netns=ns)
    try:
        a.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap})
        msg = b.fault("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap})
        assert msg.startswith("Could not create the network device: Open tap device failed")
        assert "resource busy (os error 16)" in msg
        # Re-configuring the same interface in the same VMM reopens the TAP.
        a.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap,
                                                 "guest_mac": MAC})
        assert b.fault("PUT", "/network-interfaces/eth0",
                       {"iface_id": "eth0", "host_dev_name": "x" * 16}).startswith(
            "Could not create the network device")
    finally:
        a.close()
        b.close()


def test_network_overrides_on_snapshot_load(netns):
    ns, tap = netns
    tap2 = unique("fct")
    ip("-n", ns, "tuntap", "add", "dev", tap2, "mode", "tap")
    ip("-n", ns, "link", "set", tap2, "up")
    vm = Fcsim(netns=ns)
    snap, mem = os.path.join(vm.dir, "s.json"), os.path.join(vm.dir, "s.mem")
    try:
        vm.configure(make_image(vm.dir), boot_args=BOOT_ARGS, nets=[(tap, MAC)])
        vm.start()
        vm.ok("PATCH", "/vm", {"state": "Paused"})
        vm.ok("PUT", "/snapshot/create", {"snapshot_path": snap, "mem_file_path": mem})
        vm.kill()
        time.sleep(0.05)
        vm2 = Fcsim(netns=ns)
        try:
            vm2.ok("PUT", "/snapshot/load", {
                "snapshot_path": snap, "mem_file_path": mem, "resume_vm": True,
                "network_overrides": [{"iface_id": "eth0", "host_dev_name": tap2}],
                "vsock_override": {"uds_path": vm2.vsock_path}})
            assert vm2.state() == "Running"
            cfg = vm2.ok("GET", "/vm/config")
            assert cfg["network-interfaces"][0]["host_dev_name"] == tap2
            assert cfg["network-interfaces"][0]["guest_mac"] == MAC.lower()
        finally:
            vm2.close()
    finally:
        vm.close()
