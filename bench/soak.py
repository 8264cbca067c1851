#!/usr/bin/python3
"""soak.py: create/exec/destroy at a fixed concurrency for a while, with a
fraction of calls cancelled by the client on purpose (figures: docs/SOAK.md).

Every worker loops: CreateSandbox, Exec `echo <n>` (output checked) a few
times, DestroySandbox. With probability --cancel-rate a call is an injected
cancel: sent as a future and cancelled after a random 0-50 ms (it may still
complete first). Errors are counted by kind: injected (CANCELLED on an
injected call, or the aftermath it explains: the sandbox of a cancelled
create is NOT_FOUND or still creating) and unexpected (everything else). A
sampler records the agent's RSS, descriptors, threads and CPU, and what it
holds on the host (network namespaces, links, loop devices, fcsim
processes) every --sample-seconds; the report gives each one's slope per
minute in each third of the run. At the end every sandbox is destroyed, the
agent stopped, and nothing may be left.

  bench/soak.py [--build DIR] [--minutes M] [--concurrency 16]
                [--cancel-rate 0.02] [--sample-seconds 10] [--json FILE]

Exit status: 0 when there was no unexpected error and nothing was left.
Needs root and a plain build (see agent.py).
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent as ha  # noqa: E402

METRICS = ("rss_kib", "fds", "threads", "netns", "links", "loops", "vmms")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}           # op -> completed count
        self.injected_sent = {}  # op -> cancels injected (the call may still win the race)
        self.injected = {}      # "op:CODE" -> count
        self.unexpected = {}    # "op:CODE" -> count
        self.examples = []      # first unexpected errors, for the report

    def add(self, d, key, msg=None):
        with self.lock:
            d[key] = d.get(key, 0) + 1
            if d is self.unexpected and msg and len(self.examples) < 10:
                self.examples.append("%s: %s" % (key, msg[:300]))


def code_name(e):
    try:
        return e.code().name
    except Exception:  # noqa: BLE001 - not an RpcError
        return type(e).__name__


LAST_DETAILS = threading.local()


def remember(e):
    try:
        LAST_DETAILS.text = e.details() or ""
    except Exception:  # noqa: BLE001 - not an RpcError
        LAST_DETAILS.text = str(e)


def call(st, op, fn, req, inject, timeout=120):
    """Runs one RPC; returns (response or None, code name or None, injected)."""
    import grpc
    if not inject:
        try:
            r = fn(req, timeout=timeout)
            st.add(st.ops, op)
            return r, None, False
        except grpc.RpcError as e:
            remember(e)
            return None, code_name(e), False
    st.add(st.injected_sent, op)
    fut = fn.future(req, timeout=timeout)
    time.sleep(random.uniform(0, 0.05))
    fut.cancel()
    try:
        r = fut.result()
        st.add(st.ops, op)
        return r, None, True
    except grpc.FutureCancelledError:
        return None, "CANCELLED", True
    except grpc.RpcError as e:
        remember(e)
        return None, code_name(e), True


def worker(ag, pb, st, n, stop, rate, execs):
    P, stub = pb[0], ag.stub
    i = 0
    while not stop.is_set():
        i += 1
        sid = "k%d-%d" % (n, i)
        # create
        inj = random.random() < rate
        r, code, _ = call(st, "create", stub.CreateSandbox,
                          P.CreateSandboxRequest(sandbox_id=sid, image="base", memory_mib=128, timeout_seconds=600),
                          inj)
        created = code is None
        if code:
            if inj and code == "CANCELLED":
                st.add(st.injected, "create:CANCELLED")
            else:
                st.add(st.unexpected, "create:" + code, sid + ": " + getattr(LAST_DETAILS, "text", ""))
        # execs, only on a sandbox known to exist
        for j in range(execs if created else 0):
            inj = random.random() < rate
            word = "w%d-%d" % (i, j)
            r, code, _ = call(st, "exec", stub.Exec, P.ExecRequest(sandbox_id=sid, command=["echo", word]), inj)
            if code:
                if inj and code == "CANCELLED":
                    st.add(st.injected, "exec:CANCELLED")
                else:
                    st.add(st.unexpected, "exec:" + code, sid + ": " + getattr(LAST_DETAILS, "text", ""))
            elif r.exit_code != 0 or r.stdout != (word + "\n").encode():
                st.add(st.unexpected, "exec:WRONG_OUTPUT", "%s: exit %d stdout %r" % (sid, r.exit_code, r.stdout[:80]))
        # destroy: always (a cancelled create may have made the sandbox)
        inj = random.random() < rate
        r, code, _ = call(st, "destroy", stub.DestroySandbox, P.DestroySandboxRequest(sandbox_id=sid), inj)
        retried = False
        if code == "CANCELLED" and inj:
            st.add(st.injected, "destroy:CANCELLED")
            retried = True
            r, code, _ = call(st, "destroy", stub.DestroySandbox, P.DestroySandboxRequest(sandbox_id=sid), False)
        if code == "NOT_FOUND" and (not created or retried):
            # the cancelled create rolled back, or the cancelled destroy finished
            st.add(st.injected, "destroy:NOT_FOUND")
        elif code:
            st.add(st.unexpected, "destroy:" + code, sid + ": " + getattr(LAST_DETAILS, "text", ""))


def sampler(ag, t0, samples, stop, every):
    while True:
        s = ag.sample()
        s.update(ag.host())
        s["t"] = time.monotonic() - t0
        samples.append(s)
        if stop.wait(every):
            return


def thirds(samples, key):
    """Slope per minute of |key| over each third of the run."""
    if not samples:
        return []
    end = samples[-1]["t"]
    out = []
    for k in range(3):
        lo, hi = end * k / 3, end * (k + 1) / 3
        pts = [(s["t"] / 60, s[key]) for s in samples if lo <= s["t"] <= hi]
        out.append(round(ha.slope(pts), 2))
    return out


def run(args):
    build = ha.build_dir(args.build)
    work = args.work or tempfile.mkdtemp(prefix="ha-soak-")
    pb = ha.load_stubs(os.path.join(work, "stubs"))
    certs = ha.gen_certs(os.path.join(work, "certs"))
    images = ha.build_images(build, os.path.join(work, "images"))
    # Destroyed sandboxes' slots are scrubbed in the background before reuse:
    # room for a second set of them besides the live ones and the pool.
    slots = 2 * args.concurrency + 8
    ag = ha.Agent(build, os.path.join(work, "agent"), certs, images, slots=slots, pool=min(4, slots))
    st = Stats()
    samples = []
    report = {"machine": ha.machine(), "minutes": args.minutes, "concurrency": args.concurrency,
              "cancel_rate": args.cancel_rate, "execs_per_sandbox": args.execs}
    ok = False
    try:
        ag.start(pb)
        stop, sstop = threading.Event(), threading.Event()
        t0 = time.monotonic()
        cpu0 = ag.sample()["cpu_s"]
        smp = threading.Thread(target=sampler, args=(ag, t0, samples, sstop, args.sample_seconds))
        smp.start()
        ws = [threading.Thread(target=worker, args=(ag, pb, st, n, stop, args.cancel_rate, args.execs))
              for n in range(args.concurrency)]
        for w in ws:
            w.start()
        stop.wait(args.minutes * 60)
        stop.set()
        for w in ws:
            w.join()
        secs = time.monotonic() - t0
        sstop.set()
        smp.join()
        cpu = ag.sample()["cpu_s"] - cpu0
        left_listed = ag.destroy_all()
        time.sleep(1)
        final = ag.sample()
        final.update(ag.host())
        rc = ag.stop(timeout=120 + slots)
        left = {k: v for k, v in ag.holdings().items() if v}
        report.update({
            "seconds": round(secs, 1),
            "ops": st.ops,
            "sandboxes_per_min": round(st.ops.get("destroy", 0) / secs * 60, 1),
            "execs_per_s": round(st.ops.get("exec", 0) / secs, 1),
            "agent_cpu_pct": round(cpu / secs * 100, 1),
            "injected_sent": st.injected_sent,
            "injected": st.injected,
            "unexpected": st.unexpected,
            "unexpected_examples": st.examples,
            "first": {k: samples[0][k] for k in METRICS} if samples else {},
            "last": {k: samples[-1][k] for k in METRICS} if samples else {},
            "max": {k: max(s[k] for s in samples) for k in METRICS} if samples else {},
            "slope_per_min_by_third": {k: thirds(samples, k) for k in METRICS},
            "after_destroy_all": {k: final[k] for k in METRICS},
            "sandboxes_left_listed": left_listed,
            "left_after_stop": left,
            "exit_status": rc,
            "samples": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in s.items()} for s in samples],
        })
        ok = not st.unexpected and not left and rc == 0 and left_listed == 0
        report["ok"] = ok
        if rc != 0 or st.unexpected:
            report["agent_log_tail"] = ag.log()[-3000:]
    finally:
        ag.kill()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return report, ok


def render(r):
    lines = ["Soak: %s min at concurrency %d, cancel rate %.3f, %d execs per sandbox (%d CPUs, %.0f GiB)" % (
        r["minutes"], r["concurrency"], r["cancel_rate"], r["execs_per_sandbox"], r["machine"]["cpus"],
        r["machine"]["mem_gib"]),
        "ops: %s; %.1f sandboxes/min, %.1f execs/s; agent CPU %.1f%%" % (
            r["ops"], r["sandboxes_per_min"], r["execs_per_s"], r["agent_cpu_pct"]),
        "cancels injected: %s; their outcomes: %s" % (r["injected_sent"] or "none", r["injected"] or "none"),
        "unexpected: %s" % (r["unexpected"] or "none")]
    for e in r.get("unexpected_examples", []):
        lines.append("  " + e)
    lines.append("")
    lines.append("| Metric | first | last | max | slope/min 1st third | 2nd | 3rd | after destroy-all |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for k in METRICS:
        sl = r["slope_per_min_by_third"][k]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            k, r["first"].get(k), r["last"].get(k), r["max"].get(k), *(sl + [None] * 3)[:3],
            r["after_destroy_all"][k]))
    lines.append("")
    lines.append("Left after stop: %s; exit status %s; %s" % (
        {k: len(v) for k, v in r["left_after_stop"].items()} or "nothing", r["exit_status"], "OK" if r["ok"] else "FAIL"))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--cancel-rate", type=float, default=0.02)
    ap.add_argument("--execs", type=int, default=3, help="execs per sandbox")
    ap.add_argument("--sample-seconds", type=float, default=10)
    ap.add_argument("--json", help="write the report (with every sample) here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    ap.add_argument("--work", help="scratch dir to use (kept: agent log in WORK/agent/agent.log)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak.py needs root: namespaces, loop devices, nftables")
    report, ok = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(render(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
