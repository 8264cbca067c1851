#!/usr/bin/python3
"""scale.py: many sandboxes at once on one agent (figures: docs/SCALE.md).

With the simulator (fcsim) as the VMM it creates --count sandboxes
(--concurrency at a time), then measures at that size:
- agent memory per sandbox: (RSS with N sandboxes - RSS before any) / N,
  both taken after a settle pause; descriptors and threads the same way;
- agent CPU at idle over --idle-seconds (no call in flight, N sandboxes);
- GetSandbox latency (--gets sequential calls on random ids) and
  ListSandboxes latency (--lists calls, every sandbox in each answer);
- reaper accuracy: every TTL is set so that all N expire within the same
  second (SetSandboxTimeout with timeout = ceil(T - now) for one target
  second T; the spread of the returned expires_at is reported), then the
  delay from each sandbox's expires_at to its EXPIRED and DESTROYED events
  (WatchEvents, time of receipt) gives p50/p99/max.
At the end nothing may be left: no sandbox listed, and after the agent stops
no namespace, link, loop device, fcsim process, mount or clone.

  bench/scale.py [--build DIR] [--count 1000] [--concurrency 8]
                 [--idle-seconds 30] [--json FILE]

Exit status 0 when every sandbox was created, every TTL expired into a
destroy, and nothing was left. Needs root and a plain build (agent.py).
"""
import argparse
import concurrent.futures
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent as ha  # noqa: E402

MEM_MIB = 128


def ms(x):
    return None if x is None else round(x * 1000, 2)


def dist(xs):
    return {"n": len(xs), "p50": ms(ha.pct(xs, 50)), "p99": ms(ha.pct(xs, 99)), "max": ms(max(xs) if xs else None)}


def settle(ag, secs):
    """Samples after |secs| of quiet (the slot pool refills meanwhile)."""
    time.sleep(secs)
    s = ag.sample()
    s.update(ag.host())
    return s


def watch(ag, pb, events, ready, stop):
    """Receipt time (wall clock) of each sandbox's EXPIRED and DESTROYED."""
    import grpc
    P = pb[0]
    ch = ag.new_channel()
    stub = pb[1].HostAgentServiceStub(ch)
    it = stub.WatchEvents(P.WatchEventsRequest())
    ready.set()
    try:
        for ev in it:
            now = time.time()
            if ev.kind in (P.SandboxEvent.KIND_EXPIRED, P.SandboxEvent.KIND_DESTROYED):
                events.setdefault(ev.sandbox.sandbox_id, {})[ev.kind] = now
            if stop.is_set():
                break
    except grpc.RpcError:
        pass
    finally:
        ch.close()


def run(args):
    build = ha.build_dir(args.build)
    work = args.work or tempfile.mkdtemp(prefix="ha-scale-")
    pb = ha.load_stubs(os.path.join(work, "stubs"))
    P = pb[0]
    certs = ha.gen_certs(os.path.join(work, "certs"))
    images = ha.build_images(build, os.path.join(work, "images"))
    n = args.count
    pool = min(4, n)
    with open("/proc/meminfo") as f:
        host_mib = int(f.readline().split()[1]) // 1024
    # Admission counts each guest's full memory: the simulator's guests
    # touch a few MiB, so the budget is overcommitted to fit N of them.
    memo = max(1.0, math.ceil(n * MEM_MIB * 1.1 / host_mib))
    extra = ["--overcommit", str(max(16, n)), "--max-ttl", "86400"]
    if memo > 1:
        extra += ["--memory-overcommit", str(memo)]
    ag = ha.Agent(build, os.path.join(work, "agent"), certs, images, slots=n + pool, pool=pool, extra=extra)
    rep = {"machine": ha.machine(), "count": n, "concurrency": args.concurrency, "memory_mib": MEM_MIB,
           "memory_overcommit": memo}
    ok = False
    t_start = time.monotonic()
    try:
        ag.start(pb)
        base = settle(ag, args.settle)
        rep["base"] = base

        # --- create N
        ids = ["z%04d" % i for i in range(n)]
        errors = {}
        lat = []

        def create(sid):
            t = time.monotonic()
            try:
                ag.stub.CreateSandbox(P.CreateSandboxRequest(sandbox_id=sid, image="base", memory_mib=MEM_MIB,
                                                             timeout_seconds=86000), timeout=600)
                lat.append(time.monotonic() - t)
            except Exception as e:  # noqa: BLE001 - counted and reported
                k = e.code() if hasattr(e, "code") else type(e).__name__
                errors[str(k)] = errors.get(str(k), 0) + 1
                if len(errors) < 5:
                    rep.setdefault("create_error_examples", []).append(str(e)[:300])
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as ex:
            list(ex.map(create, ids))
        rep["create"] = {"seconds": round(time.monotonic() - t, 1), "ok": len(lat), "errors": errors,
                         "latency_ms": dist(lat)}
        live = [x.sandbox_id for x in ag.stub.ListSandboxes(P.ListSandboxesRequest(), timeout=120).sandboxes]
        rep["listed_after_create"] = len(live)

        # --- memory, descriptors, threads per sandbox
        full = settle(ag, args.settle)
        rep["full"] = full
        k = max(1, len(live))
        rep["per_sandbox"] = {"rss_kib": round((full["rss_kib"] - base["rss_kib"]) / k, 1),
                              "fds": round((full["fds"] - base["fds"]) / k, 2),
                              "threads": round((full["threads"] - base["threads"]) / k, 3)}

        # --- idle CPU
        c0, t0 = ag.sample()["cpu_s"], time.monotonic()
        time.sleep(args.idle_seconds)
        c1, t1 = ag.sample()["cpu_s"], time.monotonic()
        rep["idle_cpu_pct"] = round((c1 - c0) / (t1 - t0) * 100, 3)
        rep["idle_seconds"] = round(t1 - t0, 1)

        # --- Get / List latency at this size
        gl = []
        for _ in range(args.gets):
            sid = random.choice(live)
            t = time.monotonic()
            ag.stub.GetSandbox(P.GetSandboxRequest(sandbox_id=sid), timeout=60)
            gl.append(time.monotonic() - t)
        rep["get_ms"] = dist(gl)
        ll = []
        for _ in range(args.lists):
            t = time.monotonic()
            r = ag.stub.ListSandboxes(P.ListSandboxesRequest(), timeout=120)
            ll.append(time.monotonic() - t)
            assert len(r.sandboxes) == len(live)
        rep["list_ms"] = dist(ll)

        # --- reaper: all TTLs due in the same second
        events, ready, wstop = {}, threading.Event(), threading.Event()
        wt = threading.Thread(target=watch, args=(ag, pb, events, ready, wstop), daemon=True)
        wt.start()
        ready.wait(10)
        time.sleep(0.5)
        margin = max(10, math.ceil(len(live) * 0.03))
        # Whole seconds from "now" at each call: ceil(T - now) puts every
        # expires_at in [T, T + 1) for one wall-clock second T.
        target = math.floor(time.time()) + margin
        due = {}

        def arm(sid):
            for _ in range(3):  # a call straddling a second boundary lands in T + 1: again
                sb = ag.stub.SetSandboxTimeout(P.SetSandboxTimeoutRequest(
                    sandbox_id=sid, timeout_seconds=max(1, math.ceil(target - time.time()))), timeout=60)
                due[sid] = sb.expires_at.seconds + sb.expires_at.nanos / 1e9
                if target <= due[sid] < target + 1:
                    return
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as ex:
            list(ex.map(arm, live))
        rep["arm_seconds"] = round(time.monotonic() - t, 1)
        rep["due_spread_s"] = round(max(due.values()) - min(due.values()), 3)
        rep["due_in_one_second"] = int(min(due.values())) == int(max(due.values()) - 1e-9)
        deadline = time.time() + margin + args.reap_timeout
        while time.time() < deadline:
            if sum(1 for sid in live if P.SandboxEvent.KIND_DESTROYED in events.get(sid, {})) == len(live):
                break
            time.sleep(0.5)
        wstop.set()
        exp = [events[s][P.SandboxEvent.KIND_EXPIRED] - due[s] for s in live
               if P.SandboxEvent.KIND_EXPIRED in events.get(s, {})]
        dst = [events[s][P.SandboxEvent.KIND_DESTROYED] - due[s] for s in live
               if P.SandboxEvent.KIND_DESTROYED in events.get(s, {})]
        rep["reaper"] = {"expired_ms": dist(exp), "destroyed_ms": dist(dst),
                         "early": sum(1 for x in exp if x < -0.01)}
        rep["peak_after_reap"] = settle(ag, 1)

        left_listed = ag.destroy_all()
        # Stopping deletes every slot the pool kept (a network namespace
        # each: the kernel takes a good fraction of a second per namespace).
        t = time.monotonic()
        rc = ag.stop(timeout=120 + n)
        rep["stop_seconds"] = round(time.monotonic() - t, 1)
        left = {k: v for k, v in ag.holdings().items() if v}
        rep.update({"sandboxes_left_listed": left_listed, "left_after_stop": left, "exit_status": rc,
                    "total_seconds": round(time.monotonic() - t_start, 1)})
        ok = (not errors and len(live) == n and len(dst) == n and rep["reaper"]["early"] == 0 and
              left_listed == 0 and not left and rc == 0)
        rep["ok"] = ok
        if not ok:
            rep["agent_log_tail"] = ag.log()[-3000:]
    finally:
        ag.kill()
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return rep, ok


def render(r):
    pb, f, b = r.get("per_sandbox", {}), r.get("full", {}), r.get("base", {})
    L = ["Scale: %d sandboxes (%d MiB each, memory overcommit %s), %d CPUs, %.0f GiB" % (
        r["count"], r["memory_mib"], r["memory_overcommit"], r["machine"]["cpus"], r["machine"]["mem_gib"]),
        "created: %s in %ss, create latency %s" % (r["create"]["ok"], r["create"]["seconds"],
                                                    r["create"]["latency_ms"]),
        "create errors: %s" % (r["create"]["errors"] or "none"),
        "",
        "| Figure | value |", "|---|---|",
        "| agent RSS base / with N | %s / %s KiB |" % (b.get("rss_kib"), f.get("rss_kib")),
        "| agent RSS per sandbox beyond the base | %s KiB |" % pb.get("rss_kib"),
        "| descriptors base / with N / per sandbox | %s / %s / %s |" % (b.get("fds"), f.get("fds"), pb.get("fds")),
        "| threads base / with N | %s / %s |" % (b.get("threads"), f.get("threads")),
        "| agent CPU at idle (%ss) | %s %% |" % (r.get("idle_seconds"), r.get("idle_cpu_pct")),
        "| GetSandbox p50 / p99 | %s / %s ms |" % (r["get_ms"]["p50"], r["get_ms"]["p99"]),
        "| ListSandboxes (%d) p50 / p99 | %s / %s ms |" % (r["listed_after_create"], r["list_ms"]["p50"],
                                                         r["list_ms"]["p99"]),
        "| TTLs armed in / due spread | %s s / %s s |" % (r["arm_seconds"], r["due_spread_s"]),
        "| expiry -> EXPIRED p50 / p99 / max | %s / %s / %s ms |" % (
            r["reaper"]["expired_ms"]["p50"], r["reaper"]["expired_ms"]["p99"], r["reaper"]["expired_ms"]["max"]),
        "| expiry -> DESTROYED p50 / p99 / max (n=%d) | %s / %s / %s ms |" % (
            r["reaper"]["destroyed_ms"]["n"], r["reaper"]["destroyed_ms"]["p50"],
            r["reaper"]["destroyed_ms"]["p99"], r["reaper"]["destroyed_ms"]["max"]),
        "",
        "Left: %d listed; after stop (%ss) %s; exit status %s; %s" % (
            r["sandboxes_left_listed"], r.get("stop_seconds"),
            {k: len(v) for k, v in r["left_after_stop"].items()} or "nothing", r["exit_status"],
            "OK" if r["ok"] else "FAIL")]
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--settle", type=float, default=10, help="quiet seconds before each memory sample")
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--gets", type=int, default=1000)
    ap.add_argument("--lists", type=int, default=50)
    ap.add_argument("--reap-timeout", type=float, default=600, help="seconds after the due second")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    ap.add_argument("--work", help="scratch dir to use (kept: agent log in WORK/agent/agent.log)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale.py needs root: namespaces, loop devices, nftables")
    report, ok = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(render(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
