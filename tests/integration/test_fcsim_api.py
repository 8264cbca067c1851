"""fcsim REST API: Firecracker's rules without booting a guest (except where
a post-boot rule needs one). See tools/fcsim/README.md."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fcsim"))
from helpers import (POST_BOOT, PRE_BOOT, FCSIM, Fcsim, make_image,  # noqa: E402
                     require_root_and_binary)

SERDE = "An error occurred when deserializing the json body of a request: "


@pytest.fixture
def vm():
    require_root_and_binary()
    f = Fcsim()
    yield f
    f.close()


def test_instance_info_version_and_machine_config_defaults(vm):
    assert vm.ok("GET", "/") == {"id": vm.id, "state": "Not started", "vmm_version": "1.16.1",
                                 "app_name": "Firecracker"}
    assert vm.ok("GET", "/version") == {"firecracker_version": "1.16.1"}
    assert vm.ok("GET", "/machine-config") == {"vcpu_count": 1, "mem_size_mib": 128, "smt": False,
                                               "track_dirty_pages": False, "huge_pages": "None"}
    vm.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256})
    vm.ok("PATCH", "/machine-config", {"mem_size_mib": 512})
    cfg = vm.ok("GET", "/machine-config")
    assert (cfg["vcpu_count"], cfg["mem_size_mib"]) == (2, 512)


def test_post_boot_only_calls_fail_before_boot(vm):
    assert vm.fault("PATCH", "/vm", {"state": "Paused"}) == PRE_BOOT
    assert vm.fault("PATCH", "/drives/rootfs", {"drive_id": "rootfs"}) == PRE_BOOT
    assert vm.fault("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0"}) == PRE_BOOT
    assert vm.fault("PUT", "/actions", {"action_type": "SendCtrlAltDel"}) == PRE_BOOT
    assert vm.fault("PUT", "/actions", {"action_type": "FlushMetrics"}) == PRE_BOOT
    assert vm.fault("PUT", "/snapshot/create",
                    {"snapshot_path": "/tmp/x", "mem_file_path": "/tmp/y"}) == PRE_BOOT


def test_bodies_are_validated_against_the_spec(vm):
    drive = {"drive_id": "rootfs", "path_on_host": vm.kernel, "is_root_device": True,
             "is_read_only": True}
    msg = vm.fault("PUT", "/drives/rootfs", {**drive, "bogus": 1})
    assert msg.startswith(SERDE + "unknown field `bogus`")
    msg = vm.fault("PUT", "/drives/rootfs", {"drive_id": "rootfs"})
    assert msg == SERDE + "missing field `is_root_device`."
    msg = vm.fault("PUT", "/machine-config", {"vcpu_count": "2", "mem_size_mib": 128})
    assert msg.startswith(SERDE + "invalid type")
    assert vm.fault("PUT", "/machine-config", {"vcpu_count": 3, "mem_size_mib": 128, "smt": True}) \
        .startswith("The vCPU number is invalid")
    assert vm.fault("PUT", "/machine-config", {"vcpu_count": 33, "mem_size_mib": 128}) \
        .startswith("The vCPU number is invalid")
    assert vm.fault("PUT", "/drives/root-fs", {**drive, "drive_id": "root-fs"}) == \
        "API Resource IDs can only contain alphanumeric characters and underscores."
    assert vm.fault("PUT", "/drives/other", drive) == \
        "The id from the path does not match the id from the body!"
    assert vm.fault("PUT", "/network-interfaces/eth0",
                    {"iface_id": "eth1", "host_dev_name": "tap0"}) == \
        "The id from the path does not match the id from the body!"
    assert vm.fault("PUT", "/drives", drive) == "The ID cannot be empty."
    assert vm.fault("PUT", "/actions", {"action_type": "Reboot"}).startswith(
        SERDE + "unknown variant `Reboot`")
    assert vm.fault("PUT", "/vsock", {"guest_cid": 3}) == SERDE + "missing field `uds_path`."
    assert vm.fault("PUT", "/boot-source", raw="{not json").startswith(SERDE)
    assert vm.fault("PUT", "/boot-source", raw="") == "Empty PUT request."
    assert vm.fault("PATCH", "/machine-config", {}) == "Empty PATCH request."
    assert vm.fault("GET", "/bogus") == "Invalid request method and/or path: GET bogus."
    assert vm.fault("PUT", "/network-interfaces/eth0",
                    {"iface_id": "eth0", "host_dev_name": "t", "guest_mac": "zz"}) \
        .startswith("invalid MAC")
    # The failed calls changed nothing.
    assert vm.ok("GET", "/vm/config")["drives"] == []


def test_files_are_checked_like_firecracker(vm):
    msg = vm.fault("PUT", "/boot-source", {"kernel_image_path": "/nonexistent/vmlinux"})
    assert msg.startswith("The kernel file cannot be opened: No such file or directory")
    msg = vm.fault("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/nonexistent",
                                             "is_root_device": True, "is_read_only": False})
    assert "No such file or directory" in msg
    vm.ok("PUT", "/drives/a", {"drive_id": "a", "path_on_host": vm.kernel, "is_root_device": True,
                               "is_read_only": True})
    assert vm.fault("PUT", "/drives/b", {"drive_id": "b", "path_on_host": vm.kernel,
                                         "is_root_device": True, "is_read_only": True}) == \
        "A root block device already exists!"
    assert vm.fault("PUT", "/actions", {"action_type": "InstanceStart"}) == \
        "Cannot start microvm without kernel configuration."


def test_vsock_socket_is_bound_at_put_and_never_removed(vm):
    vm.ok("PUT", "/vsock", {"guest_cid": 3, "uds_path": vm.vsock_path})
    assert os.path.exists(vm.vsock_path)
    other = os.path.join(vm.dir, "taken.sock")
    open(other, "w").close()
    msg = vm.fault("PUT", "/vsock", {"guest_cid": 3, "uds_path": other})
    assert "Address already in use" in msg
    assert vm.fault("PUT", "/vsock", {"guest_cid": 2, "uds_path": other + "2"}).startswith(
        "Cannot create backend for vsock device")
    vm.kill()
    assert os.path.exists(vm.vsock_path) and os.path.exists(vm.api_sock)


def test_logger_and_metrics_files(vm):
    log = os.path.join(vm.dir, "fc.log")
    metrics = os.path.join(vm.dir, "fc.metrics")
    os.mkfifo(metrics)      # a FIFO with no reader must not block
    vm.ok("PUT", "/logger", {"log_path": log, "level": "debug", "show_level": True})
    vm.ok("PUT", "/metrics", {"metrics_path": metrics})
    assert "Reinitialization of metrics not allowed" in vm.fault(
        "PUT", "/metrics", {"metrics_path": metrics})
    vm.ok("GET", "/version")
    with open(log) as f:
        text = f.read()
    assert f"[{vm.id}:fc_api:INFO] The API server received a GET request on \"/version\"" in text
    assert "Received Error. Status code: 400 Bad Request. Message: Cannot initialize the metrics" \
        in text


def test_body_limit_and_bad_requests_close_the_connection(vm):
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.api_sock)
    s.sendall(b"PUT /logger HTTP/1.1\r\nContent-Length: 51201\r\n\r\n")
    reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 400")
    assert "larger than the limit of 51200" in reply
    assert s.recv(10) == b""
    s.close()
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.api_sock)
    s.sendall(b"PUT /logger HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 400")
    s.close()


def test_expect_continue_and_pipelined_keepalive(vm):
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.api_sock)
    body = b'{"vcpu_count":2,"mem_size_mib":256}'
    s.sendall(b"PUT /machine-config HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
              % len(body))
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body + b"GET /version HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    data = b""
    while data.count(b"HTTP/1.1") < 3:
        data += s.recv(4096)
    assert data.startswith(b"HTTP/1.1 204")
    assert b"firecracker_version" in data and b"Not started" in data
    s.close()


def test_connection_limit_is_ten(vm):
    conns = []
    for _ in range(10):
        s = socket.socket(socket.AF_UNIX)
        s.connect(vm.api_sock)
        conns.append(s)
    for s in conns:
        s.sendall(b"GET /version HTTP/1.1\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    extra = socket.socket(socket.AF_UNIX)
    extra.connect(vm.api_sock)
    extra.settimeout(5)
    try:    # fcsim accepts and closes it at once: no response, maybe EPIPE
        extra.sendall(b"GET /version HTTP/1.1\r\n\r\n")
        assert extra.recv(4096) == b""
    except (BrokenPipeError, ConnectionResetError):
        pass
    # The ten still work, and a slot frees up when one leaves.
    conns[0].sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert conns[0].recv(4096).startswith(b"HTTP/1.1 200")
    conns.pop().close()
    time.sleep(0.05)
    s = socket.socket(socket.AF_UNIX)
    s.connect(vm.api_sock)
    s.sendall(b"GET /version HTTP/1.1\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    conns.append(s)
    for s in conns + [extra]:
        s.close()


def test_api_socket_in_use_fails_like_firecracker():
    require_root_and_binary()
    d = tempfile.mkdtemp(prefix="fcsimt-", dir="/tmp")
    path = os.path.join(d, "api.sock")
    open(path, "w").close()
    p = subprocess.run([FCSIM, "--api-sock", path], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "Address already in use" in p.stderr or "Address in use" in p.stderr
    assert os.path.exists(path)     # fcsim removes nothing
    os.unlink(path)
    os.rmdir(d)


def test_bad_arguments_exit_153():
    require_root_and_binary()
    p = subprocess.run([FCSIM, "--bogus"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 153
    p = subprocess.run([FCSIM, "--api-sock", "/tmp/x.sock", "--id", "bad id"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 153
    p = subprocess.run([FCSIM, "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith("Firecracker v1.16.1")


def test_pre_boot_only_calls_fail_after_boot(vm):
    image = make_image(vm.dir)
    vm.configure(image)
    vm.start()
    assert vm.state() == "Running"
    for method, path, body in [
            ("PUT", "/boot-source", {"kernel_image_path": vm.kernel}),
            ("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
            ("PATCH", "/machine-config", {"vcpu_count": 1}),
            ("PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": image,
                                       "is_root_device": True, "is_read_only": False}),
            ("PUT", "/logger", {"level": "Info"}),
            ("PUT", "/metrics", {"metrics_path": "/tmp/m"}),
            ("PUT", "/vsock", {"guest_cid": 3, "uds_path": "/tmp/x"}),
            ("PUT", "/actions", {"action_type": "InstanceStart"}),
            ("PUT", "/snapshot/load", {"snapshot_path": "/tmp/s", "mem_file_path": "/tmp/m"})]:
        assert vm.fault(method, path, body) == POST_BOOT, path
    assert vm.fault("PUT", "/snapshot/create", {"snapshot_path": os.path.join(vm.dir, "s"),
                                                "mem_file_path": os.path.join(vm.dir, "m")}) \
        == "Cannot create snapshot: the microVM is not paused."
    vm.ok("PUT", "/actions", {"action_type": "FlushMetrics"})
    assert vm.state() == "Running"
    # Post-boot device updates: rate limiters accepted, the root's file fixed.
    vm.ok("PATCH", "/drives/rootfs", {"drive_id": "rootfs",
                                      "rate_limiter": {"ops": {"size": 10, "refill_time": 100}}})
    vm.ok("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": image})
    assert vm.fault("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/x"}) \
        .startswith("Unable to patch the block device")
    assert vm.fault("PATCH", "/drives/other", {"drive_id": "other"}) == "Invalid block device ID!"
    assert vm.fault("PATCH", "/drives/rootfs", {"drive_id": "rootfs", "is_read_only": True}) \
        .startswith(SERDE + "unknown field `is_read_only`")
    assert vm.fault("PATCH", "/network-interfaces/eth0", {"iface_id": "eth0"}) == \
        "Invalid network interface ID - not found."


def test_command_line_logger_metrics_and_payload_limit():
    require_root_and_binary()
    d = tempfile.mkdtemp(prefix="fcsimt-", dir="/tmp")
    log, metrics = os.path.join(d, "fc.log"), os.path.join(d, "fc.metrics")
    vm = Fcsim(workdir=d, extra_args=["--log-path", log, "--level", "Warning", "--show-level",
                                      "--metrics-path", metrics, "--http-api-max-payload-size",
                                      "100", "--boot-timer", "--no-seccomp"])
    try:
        assert vm.fault("PUT", "/logger", raw="{" + " " * 200 + "}").startswith(
            "Request payload with size 202 is larger than the limit of 100")
        vm.fault("PUT", "/bogus", {"a": 1})
        vm.ok("GET", "/version")
        with open(log) as f:
            text = f.read()
        # Warning level: errors are logged, info lines are not.
        assert ":ERROR] Received Error. Status code: 400 Bad Request." in text
        assert "received a GET request" not in text
    finally:
        vm.kill(signal.SIGTERM)
        with open(metrics) as f:
            line = json.loads(f.read().splitlines()[-1])   # flushed at exit
        assert line["api_server"]["requests"] >= 2
        vm.close()
