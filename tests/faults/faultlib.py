"""Shared helpers for the fault-injection tests (issue 9): a real agent
(`hostagent`, with the fcsim simulator) that can be killed and restarted on
the same state, and a host-wide inventory of everything a sandbox holds, to
prove that nothing leaks.

Import from a test in tests/integration/ (conftest.py is on the path there):

    sys.path.insert(0, os.path.join(TOP, "tests", "faults"))
    import faultlib

What it offers:
  load_pb()                  -> (hostagent_pb2, hostagent_pb2_grpc); call after
                                the conftest `stubs` fixture has run.
  build_images(dir)          -> dir holding base.ext4 (scripts/build-rootfs.sh;
                                guest agent from HA_GUEST_BUILD_DIR or HA_BUILD_DIR).
  seed(default=None)         -> the schedule seed: HA_FAULT_SEED if set, else
                                random; printed so a run can be replayed.
  Host(certs, workdir, images, slots=24, extra=())
      One agent configuration that survives restarts: state dir, run dir,
      network prefix and address ranges (random prefix "f" + 3 letters, run
      dir /run/ha-<prefix>, warm pool 0 so namespaces match sandboxes exactly).
      .start()               start the agent, wait for agent.ready; .agent is
                             the conftest Agent (log(), proc, tls_addr).
      .kill9()               SIGKILL the agent and reap it (VMMs live on).
      .restart()             start again on the same state (the previous
                             generation's log is kept as agent.log.<n>).
      .stop()                clean stop (conftest.check_clean_exit).
      .channel() / .stub()   a new mTLS channel / a HostAgentService stub on it.
      .wait_serving(stub)    wait for the end of recovery; returns ListSandboxes.
      .sid(n)                a sandbox id scoped to this host ("<prefix>-<n>"),
                             so cgroups and processes can be told apart from
                             other tests on the same machine.
      .vmm_pids()            {sandbox id: pid} of VMMs under the run dir.
      .inventory()           everything on the host that belongs to this agent
                             (see Host.inventory for the keys).
      .expected(sandboxes)   the inventory the live sandboxes (ListSandboxes
                             entries, non-FAILED) should own, with an agent
                             running.
      .leaks(sandboxes)      {key: (found, expected)} for every key that
                             differs; {} when the host matches exactly.
      .expected_empty()      the inventory after a clean stop with no sandbox.
      .scrub()               best-effort removal of everything (for finally:
                             kills VMMs, guests, removes netns, links, nft
                             table, loop devices, cgroups, dirs).
  vmm_pids_under(run_dir)    {sandbox id: pid} for any run dir.
"""
import ipaddress
import json
import os
import random
import shutil
import signal
import sqlite3
import string
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from conftest import BUILD, binary, check_clean_exit, start_agent, tls_channel  # noqa: E402

CG_ROOT = "/sys/fs/cgroup"
CG_CONTROLLERS = ("cpu", "memory", "freezer")


def load_pb():
    from hostagent.v1 import hostagent_pb2, hostagent_pb2_grpc
    return hostagent_pb2, hostagent_pb2_grpc


def build_images(d):
    os.makedirs(d, exist_ok=True)
    # The guest agent is static: a sanitizer build cannot make it, so
    # scripts/test.sh points HA_GUEST_BUILD_DIR at a plain build then.
    env = dict(os.environ, HA_BUILD_DIR=os.environ.get("HA_GUEST_BUILD_DIR", BUILD))
    subprocess.run([os.path.join(TOP, "scripts", "build-rootfs.sh"), d], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return d


def seed(default=None):
    s = os.environ.get("HA_FAULT_SEED")
    s = int(s) if s else (default if default is not None else random.SystemRandom().randrange(1, 2**31))
    print(f"fault schedule seed: HA_FAULT_SEED={s}", flush=True)
    return s


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def vmm_pids_under(run_dir):
    """{sandbox id: pid} of processes started with --api-sock <run_dir>/<id>/api.sock."""
    out = {}
    pre = (run_dir.rstrip("/") + "/").encode()
    for pid in _pids():
        a = _cmdline(pid)
        for i, arg in enumerate(a[:-1]):
            if arg == b"--api-sock" and a[i + 1].startswith(pre) and a[i + 1].endswith(b"/api.sock"):
                sid = a[i + 1][len(pre):-len(b"/api.sock")].decode(errors="replace")
                out.setdefault(sid, []).append(pid)
                break
    for sid, pids in out.items():
        # fcsim's guest, between clone and exec, still shows fcsim's
        # command line: keep the VMM, not its children.
        if len(pids) > 1:
            out[sid] = [p for p in pids if _ppid(p) not in pids] or pids
    return {k: (v[0] if len(v) == 1 else sorted(v)) for k, v in out.items()}


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return json.loads(p.stdout)


def _routes_overlap(ranges):
    nets = [ipaddress.ip_network(r) for r in ranges]
    for r in _run_json(["ip", "-j", "route", "show", "table", "all"]) or []:
        try:
            dst = ipaddress.ip_network(r.get("dst", ""), strict=False)
        except ValueError:
            continue        # "default", multicast names...
        if dst.version == 4 and dst.prefixlen > 0 and any(dst.overlaps(n) for n in nets):
            return True
    return False


class Host:
    def __init__(self, certs, workdir, images, slots=24, extra=(), prefix=None):
        self.certs, self.workdir, self.images = certs, workdir, images
        self.state_dir = os.path.join(workdir, "state")
        self.slots, self.extra = slots, list(extra)
        # Agents of other tests may run on this host at the same time: take
        # a prefix whose address ranges no existing route overlaps.
        for _ in range(100):
            self.prefix = prefix or "f" + "".join(random.choice(string.ascii_lowercase) for _ in range(3))
            k = sum(ord(ch) * 7 ** i for i, ch in enumerate(self.prefix)) % 50
            self.sandbox_range = f"10.{200 + k}.0.0/16"
            self.veth_range = f"172.{16 + k % 16}.{150 + k}.0/24"
            if prefix or not _routes_overlap((self.sandbox_range, self.veth_range)):
                break
        self.run_dir = f"/run/ha-{self.prefix}"
        self.agent = None
        self.generation = 0

    # --- life ---------------------------------------------------------------

    def args(self):
        return ["--images-dir", self.images, "--firecracker-bin", binary("fcsim"),
                "--slots", str(self.slots), "--pool", "0", "--net-prefix", self.prefix,
                "--run-dir", self.run_dir, "--overcommit", "64",
                "--net-sandbox-range", self.sandbox_range, "--net-veth-range", self.veth_range] + self.extra

    def start(self):
        log = os.path.join(self.workdir, "agent.log")
        if os.path.exists(log):
            os.rename(log, f"{log}.{self.generation}")
        self.generation += 1
        self.agent = start_agent(self.certs, self.workdir, binary_name="hostagent", extra=self.args())
        return self.agent

    def kill9(self):
        if self.agent and self.agent.proc.poll() is None:
            self.agent.proc.kill()
        if self.agent:
            self.agent.proc.wait()

    def restart(self):
        self.kill9()
        return self.start()

    def stop(self):
        check_clean_exit(self.agent)

    def channel(self):
        return tls_channel(self.agent)

    def stub(self, channel=None):
        return load_pb()[1].HostAgentServiceStub(channel or self.channel())

    def wait_serving(self, stub, timeout=90):
        """Mutating calls answer UNAVAILABLE until recovery is over; a
        keep-alive of an unknown id answers NOT_FOUND once it is."""
        import grpc
        P = load_pb()[0]
        deadline = time.monotonic() + timeout
        while True:
            try:
                stub.SetSandboxTimeout(P.SetSandboxTimeoutRequest(sandbox_id="readiness-probe", timeout_seconds=1),
                                       timeout=10)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    return stub.ListSandboxes(P.ListSandboxesRequest(), timeout=30)
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def sid(self, n):
        return f"{self.prefix}-{n}"

    def vmm_pids(self):
        return vmm_pids_under(self.run_dir)

    # --- inventory ----------------------------------------------------------

    def _ours(self, sid):
        return sid.startswith(self.prefix + "-")

    def inventory(self):
        """Everything on the host that belongs to this agent. Keys:
        netns       names of /run/netns/<prefix>-*
        veths       host links named <prefix>-*
        routes      host routes through those links ("dst dev")
        nft         nft tables named <prefix> (the agent's host table) or
                    <prefix>-* (any family)
        loops       sandbox ids whose clone backs a loop device (matched by
                    backing path under the state dir or by backing inode)
        mounts      host mounts under the run dir or the state dir
        clones      ids with <state>/rootfs/<id>.ext4
        snapshots   files in <state>/snapshots
        rundirs     entries of the run dir other than vmroot
        sockets     "<id>/<name>" for every socket file under the run dir
        vmm         {id: pid} of VMM processes (fcsim or firecracker)
        no_vmroot   ids whose VMM does not have <run>/vmroot mounted
        guests      sorted "<id>:<fcsim pid>" of cgroups that still hold
                    processes (a guest outliving its VMM shows here)
        cgroups     sorted "<ctl>/fcsim-<id>-<pid>" groups of our ids
        rows        {id: state number} of the SQLite store
        """
        inv = {}
        inv["netns"] = sorted(n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                              if n.startswith(self.prefix + "-"))
        links = _run_json(["ip", "-j", "link", "show"]) or []
        inv["veths"] = sorted(l["ifname"] for l in links if l.get("ifname", "").startswith(self.prefix + "-"))
        routes = _run_json(["ip", "-j", "route", "show"]) or []
        inv["routes"] = sorted(f'{r.get("dst")} {r.get("dev")}' for r in routes
                               if r.get("dev", "").startswith(self.prefix + "-"))
        tables = (_run_json(["nft", "-j", "list", "tables"]) or {}).get("nftables", [])
        inv["nft"] = sorted(f'{t["table"]["family"]} {t["table"]["name"]}' for t in tables if "table" in t and
                            (t["table"]["name"] == self.prefix or t["table"]["name"].startswith(self.prefix + "-")))
        inv["loops"] = self._loops()
        with open("/proc/self/mounts") as f:
            inv["mounts"] = sorted(l.split()[1] for l in f
                                   if l.split()[1].startswith((self.run_dir, self.state_dir)))
        rootfs = os.path.join(self.state_dir, "rootfs")
        inv["clones"] = sorted(n[:-5] for n in (os.listdir(rootfs) if os.path.isdir(rootfs) else [])
                               if n.endswith(".ext4"))
        snaps = os.path.join(self.state_dir, "snapshots")
        inv["snapshots"] = sorted(os.listdir(snaps)) if os.path.isdir(snaps) else []
        rd = sorted(os.listdir(self.run_dir)) if os.path.isdir(self.run_dir) else []
        inv["rundirs"] = [n for n in rd if n != "vmroot"]
        socks = []
        for n in inv["rundirs"]:
            p = os.path.join(self.run_dir, n)
            if os.path.isdir(p):
                for f in os.listdir(p):
                    try:
                        if (os.lstat(os.path.join(p, f)).st_mode & 0o170000) == 0o140000:
                            socks.append(f"{n}/{f}")
                    except OSError:
                        pass
        inv["sockets"] = sorted(socks)
        inv["vmm"] = self.vmm_pids()
        inv["no_vmroot"] = sorted(sid for sid, pid in inv["vmm"].items()
                                  if isinstance(pid, int) and not self._has_vmroot(pid))
        inv["cgroups"], inv["guests"] = self._cgroups()
        inv["rows"] = self._rows()
        return inv

    def _loops(self):
        return sorted(owner for _, owner in self._loop_devices())

    def _loop_devices(self):
        """A loop device is ours when its backing file has the inode of one
        of our clones (the path it shows is the one the VMM saw, under its
        private <run>/vmroot), or its path is under our run or state dir."""
        out = _run_json(["losetup", "-l", "-J", "-O", "NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN"]) or {}
        rootfs = os.path.join(self.state_dir, "rootfs")
        inodes = {}
        if os.path.isdir(rootfs):
            for n in os.listdir(rootfs):
                try:
                    st = os.stat(os.path.join(rootfs, n))
                    inodes[(f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", st.st_ino)] = n[:-5]
                except OSError:
                    pass
        found = []
        for d in out.get("loopdevices", []):
            back = d.get("back-file") or ""
            key = (str(d.get("back-maj:min")).strip(), int(d.get("back-ino") or -1))
            if key in inodes:
                found.append((d["name"], inodes[key]))
            elif back.startswith((self.state_dir, self.run_dir + "/")):
                found.append((d["name"], back))     # a clone no longer on disk
        return found

    def _has_vmroot(self, pid):
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                return any(l.split()[4] == os.path.join(self.run_dir, "vmroot") for l in f)
        except OSError:
            return True     # gone meanwhile: "vmm" says so

    def _cgroups(self):
        groups, busy = [], []
        for ctl in CG_CONTROLLERS:
            base = os.path.join(CG_ROOT, ctl)
            if not os.path.isdir(base):
                continue
            for n in os.listdir(base):
                if not n.startswith(f"fcsim-{self.prefix}-"):
                    continue
                groups.append(f"{ctl}/{n}")
                try:
                    with open(os.path.join(base, n, "cgroup.procs")) as f:
                        if f.read().split():
                            busy.append(n[len("fcsim-"):])
                except OSError:
                    pass
        guests = []
        for g in set(busy):
            sid, _, pid = g.rpartition("-")
            guests.append(f"{sid}:{pid}")
        return sorted(groups), sorted(guests)

    def _rows(self):
        db = os.path.join(self.state_dir, "state.db")
        if not os.path.exists(db):
            return {}
        for _ in range(50):
            try:
                c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    return {r[0]: r[1] for r in c.execute("SELECT id, state FROM sandboxes")}
                finally:
                    c.close()
            except sqlite3.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"cannot read {db}")

    def expected(self, sandboxes, agent_running=True):
        """What the live |sandboxes| (ListSandboxes entries) own on the host.
        FAILED ones hold nothing but their row."""
        P = load_pb()[0]
        live = [s for s in sandboxes if s.state in (P.SANDBOX_STATE_RUNNING, P.SANDBOX_STATE_PAUSED)]
        ids = sorted(s.sandbox_id for s in live)
        vmm = self.vmm_pids()
        exp = {
            "netns": sorted(f"{self.prefix}-{s.slot}" for s in live),
            "veths": sorted(f"{self.prefix}-h{s.slot}" for s in live),
            "routes": None,    # checked per sandbox below
            "nft": [f"inet {self.prefix}"] if agent_running or live else [],
            "loops": ids,
            "mounts": [],
            "clones": ids,
            "snapshots": [],
            "rundirs": ids,
            "sockets": sorted(f"{i}/{n}" for i in ids for n in ("api.sock", "vsock.sock")),
            "vmm": {i: vmm.get(i) for i in ids},
            "no_vmroot": [],
            "cgroups": sorted(f"{ctl}/fcsim-{i}-{vmm.get(i)}" for i in ids for ctl in CG_CONTROLLERS
                              if os.path.isdir(os.path.join(CG_ROOT, ctl))),
            "guests": sorted(f"{i}:{vmm.get(i)}" for i in ids),
            "rows": {s.sandbox_id: None for s in sandboxes},
        }
        return exp

    def expected_empty(self):
        return {"netns": [], "veths": [], "routes": [], "nft": [], "loops": [], "mounts": [], "clones": [],
                "snapshots": [], "rundirs": [], "sockets": [], "vmm": {}, "no_vmroot": [], "guests": [],
                "cgroups": [], "rows": {}}

    def leaks(self, sandboxes=None, agent_running=True):
        """{key: (found, expected)} for every inventory key that differs from
        what |sandboxes| should own (None: nothing, and no agent running)."""
        if sandboxes is None:
            exp, agent_running = self.expected_empty(), False
        else:
            exp = self.expected(sandboxes, agent_running)
        inv = self.inventory()
        diff = {}
        for k, want in exp.items():
            got = inv[k]
            if k == "routes":
                P = load_pb()[0]
                live = [s for s in sandboxes or []
                        if s.state in (P.SANDBOX_STATE_RUNNING, P.SANDBOX_STATE_PAUSED)]
                devs = {f"{self.prefix}-h{s.slot}" for s in live}
                bad = [r for r in got if r.split()[1] not in devs]
                missing = [s.sandbox_id for s in live if f"{s.ip} {self.prefix}-h{s.slot}" not in got]
                if bad or missing:
                    diff[k] = (got, f"only via {sorted(devs)}; missing for {missing}")
            elif k == "rows":
                if sorted(got) != sorted(want):
                    diff[k] = (got, sorted(want))
            elif got != want:
                diff[k] = (got, want)
        return diff

    # --- cleanup ------------------------------------------------------------

    def scrub(self):
        """Best effort: removes everything this host may have left (test
        teardown after a failure; a passing test leaves nothing)."""
        if self.agent and self.agent.proc.poll() is None:
            self.agent.proc.kill()
            self.agent.proc.wait()
        for sid, pid in self.vmm_pids().items():
            for p in (pid if isinstance(pid, list) else [pid]):
                try:
                    os.killpg(p, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.3)
        for ctl in CG_CONTROLLERS:
            base = os.path.join(CG_ROOT, ctl)
            if not os.path.isdir(base):
                continue
            for n in os.listdir(base):
                if n.startswith(f"fcsim-{self.prefix}-"):
                    g = os.path.join(base, n)
                    if ctl == "freezer":
                        try:
                            with open(os.path.join(g, "freezer.state"), "w") as f:
                                f.write("THAWED")
                        except OSError:
                            pass
                    try:
                        for p in open(os.path.join(g, "cgroup.procs")).read().split():
                            os.kill(int(p), signal.SIGKILL)
                    except OSError:
                        pass
        time.sleep(0.3)
        for ctl in CG_CONTROLLERS:
            base = os.path.join(CG_ROOT, ctl)
            for n in (os.listdir(base) if os.path.isdir(base) else []):
                if n.startswith(f"fcsim-{self.prefix}-"):
                    try:
                        os.rmdir(os.path.join(base, n))
                    except OSError:
                        pass
        inv = self.inventory()
        for n in inv["netns"]:
            subprocess.run(["ip", "netns", "delete", n], capture_output=True)
        for l in inv["veths"]:
            subprocess.run(["ip", "link", "delete", l], capture_output=True)
        subprocess.run(["nft", "delete", "table", "inet", self.prefix], capture_output=True)
        for name, _ in self._loop_devices():
            subprocess.run(["losetup", "-d", name], capture_output=True)
        for m in reversed(inv["mounts"]):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
