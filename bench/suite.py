#!/usr/bin/python3
"""suite.py: the one command behind docs/BENCHMARKS.md (bench/run.sh).

Runs the parts of the benchmark suite, each with its references in the same
run, and writes docs/BENCHMARKS.md from the template bench/BENCHMARKS.md.in:
the narrative is the template's, and every `<!-- bench:NAME -->` line is
replaced by a generated block (kept between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->`). A block whose part was not run this time is carried
over from the current docs/BENCHMARKS.md, so `--only` refreshes one part.

Parts: rpc (bench/bench.py: gRPC/Connect/gRPC-Web against a gRPC C++
reference), exec and lifecycle (bench/sandbox.py: the agent with the fcsim
simulator). --from-json re-renders saved results without running anything.

  bench/run.sh --build DIR --runs 3 --duration 5 --creates 32 --fs host,xfs
  bench/run.sh --only lifecycle --fs xfs
  bench/run.sh --from-json results.json
  bench/run.sh --smoke --json out.json --out /tmp/b.md   (what CI runs)
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PARTS = ("rpc", "exec", "lifecycle")
MARK = re.compile(r"^<!-- bench:([a-z_]+) -->\n(?:.*?^<!-- /bench:\1 -->\n)?", re.M | re.S)


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    model, mem = "unknown", 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return "%d CPUs (%s), %d MiB RAM, Linux %s" % (os.cpu_count(), model, mem, os.uname().release)


def agent_version(build):
    exe = os.path.join(build, "hostagent")
    if not os.path.exists(exe):
        return "n/a"
    p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return p.stdout.strip().splitlines()[0] if p.stdout.strip() else "unknown"


def command_line():
    """This run's command, without the output options."""
    args, skip = [], False
    for x in sys.argv[1:]:
        if skip:
            skip = False
        elif x in ("--json", "--out"):
            skip = True
        elif not x.startswith(("--json=", "--out=")):
            args.append(x)
    return " ".join(["bench/run.sh"] + args)


def run_part(cmd, out_json):
    """Runs one part's driver; its progress goes to our stderr. -> its JSON
    plus its markdown stdout."""
    print("suite: " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd + ["--json", out_json], stdout=subprocess.PIPE, text=True)
    res = {}
    if os.path.exists(out_json):
        with open(out_json) as f:
            res = json.load(f)
    res["stdout"] = p.stdout
    if p.returncode != 0:
        print("suite: %s failed (%d)" % (os.path.basename(cmd[1]), p.returncode), file=sys.stderr)
        res["failed"] = p.returncode
    return res


def header(part, res):
    runs = res.get("merged") or [res]
    return "\n\n".join("Run %s–%s UTC, load average %s at the start and %s at the end; `%s`; %s." % (
        r["started"], r["ended"], r["load_start"], r["load_end"], r["command"], r["agent"]) for r in runs)


def merge(files):
    """Results of several --json files as one: a later file's rpc part
    replaces an earlier one; sandbox parts are merged (exec from the last
    file that has it, lifecycle rows by filesystem), each run's header kept."""
    out = {}
    for path in files:
        with open(path) as f:
            res = json.load(f)
        for key, part in res.items():
            if key != "sandbox" or "sandbox" not in out:
                out[key] = part
                continue
            old = out["sandbox"]
            runs = old.get("merged") or [{k: old[k] for k in HEADER_KEYS}]
            if part.get("exec"):
                old["exec"] = part["exec"]
            old.setdefault("lifecycle", {}).update(part.get("lifecycle") or {})
            old["merged"] = runs + (part.get("merged") or [{k: part[k] for k in HEADER_KEYS}])
    return out


HEADER_KEYS = ("started", "ended", "load_start", "load_end", "command", "agent")


def blocks(results):
    """Marker name -> generated markdown, for every part in |results|."""
    out = {}
    if "rpc" in results:
        r = results["rpc"]
        out["rpc"] = header("rpc", r) + "\n\n" + r["stdout"].strip()
    if "sandbox" in results:
        r = results["sandbox"]
        sys.path.insert(0, HERE)
        import sandbox   # the renderer of the current checkout, so --from-json picks up its changes
        for name, text in sandbox.render(r).items():
            out[name] = text
        out["sandbox_run"] = header("sandbox", r)
    return out


def render(template, current, gen):
    def sub(m):
        name = m.group(1)
        if name in gen:
            body = gen[name].rstrip("\n") + "\n"
        else:
            old = re.search(r"^<!-- bench:%s -->\n(.*?)^<!-- /bench:%s -->\n" % (name, name), current, re.M | re.S)
            body = old.group(1) if old else "(not measured yet: `bench/run.sh --only ...`)\n"
        return "<!-- bench:%s -->\n%s<!-- /bench:%s -->\n" % (name, body, name)
    return MARK.sub(sub, template)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("HA_BUILD_DIR", os.path.join(TOP, "build")))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5, help="seconds per rpc row / exec latency row")
    ap.add_argument("--warmup", type=float, default=1, help="h2load warm-up seconds per rpc row")
    ap.add_argument("--creates", type=int, default=32, help="creates per sustained-rate run")
    ap.add_argument("--fs", default="host,xfs", help="lifecycle state filesystems: host, xfs")
    ap.add_argument("--concurrency", default="1,8,32", help="lifecycle create concurrency levels")
    ap.add_argument("--only", default=",".join(PARTS), help="comma list of parts: rpc, exec, lifecycle")
    ap.add_argument("--smoke", action="store_true", help="tiny fixed-count runs of every part (CI)")
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--from-json", help="re-render results saved with --json (a comma list is merged, e.g. "
                    "lifecycle rows of separate runs per filesystem); runs nothing")
    ap.add_argument("--out", help="the document to write (default docs/BENCHMARKS.md; with --smoke: none)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    only = [p for p in a.only.split(",") if p]
    bad = set(only) - set(PARTS)
    if bad:
        ap.error("--only: unknown part(s) %s" % ", ".join(sorted(bad)))
    out_doc = a.out or (None if a.smoke else os.path.join(TOP, "docs", "BENCHMARKS.md"))

    if a.from_json:
        results = merge(a.from_json.split(","))
    else:
        results, failed = {}, []
        work = tempfile.mkdtemp(prefix="ha-suite-")
        common = ["--build", a.build, "--runs", str(a.runs)] + (["--smoke"] if a.smoke else [])
        jobs = []
        if "rpc" in only:
            jobs.append(("rpc", [sys.executable, os.path.join(HERE, "bench.py"), "--duration", str(a.duration),
                                 "--warmup", str(a.warmup)] + common))
        sbx = [p for p in ("exec", "lifecycle") if p in only]
        if sbx:
            jobs.append(("sandbox", [sys.executable, os.path.join(HERE, "sandbox.py"), "--duration",
                                     str(a.duration), "--creates", str(a.creates), "--fs", a.fs,
                                     "--concurrency", a.concurrency,
                                     "--only", ",".join(sbx)] + common))
        for name, cmd in jobs:
            started, load_start = datetime.datetime.utcnow(), load_avg()
            res = run_part(cmd, os.path.join(work, name + ".json"))
            res.update(started=started.strftime("%Y-%m-%d %H:%M"),
                       ended=datetime.datetime.utcnow().strftime("%H:%M"), load_start=load_start,
                       load_end=load_avg(), agent=agent_version(a.build), machine=machine(),
                       command=command_line())
            sys.stdout.write(res["stdout"])
            if res.get("failed"):
                # Kept in --json for a look, not rendered: the document keeps
                # this part's last complete blocks.
                failed.append(name)
                results.setdefault("failed", {})[name] = res
            else:
                results[name] = res
        shutil.rmtree(work, ignore_errors=True)
        results["machine"] = machine()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    gen = blocks(results)
    gen["machine"] = "Machine: %s. Load average: see each run's line (the machine is shared)." % results.get(
        "machine", machine())
    if out_doc:
        with open(os.path.join(HERE, "BENCHMARKS.md.in")) as f:
            template = f.read()
        current = ""
        if os.path.exists(out_doc):
            with open(out_doc) as f:
                current = f.read()
        with open(out_doc, "w") as f:
            f.write(render(template, current, gen))
        print("suite: wrote %s" % out_doc, file=sys.stderr)
    if not a.from_json and failed:
        print("suite: FAILED: %s (see above; their blocks were left as they were)" % ", ".join(failed),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
