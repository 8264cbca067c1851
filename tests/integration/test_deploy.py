"""Deployment artefacts (issue 11): the systemd unit passes systemd-analyze
verify; deploy/package.sh builds a .deb that installs into a scratch root
(dpkg -x) whose hostagent runs; the Kubernetes and Nomad examples have the
host networking, privileges, device and netns mounts and certificate
plumbing the agent needs."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import BUILD, TOP

DEPLOY = os.path.join(TOP, "deploy")
UNIT = os.path.join(DEPLOY, "systemd", "hostagent.service")


def unit_settings():
    """[section] -> {key: [values]} of the unit file."""
    out, sec = {}, None
    for line in open(UNIT):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"\[(\w+)\]$", line)
        if m:
            sec = out.setdefault(m.group(1), {})
            continue
        k, _, v = line.partition("=")
        sec.setdefault(k, []).append(v)
    return out


def test_unit_has_what_operations_need():
    s = unit_settings()["Service"]
    assert s["KillMode"] == ["process"], "restarting the agent must not kill the VMs it manages"
    assert s["Restart"] == ["on-failure"]
    assert int(s["LimitNOFILE"][0]) >= 65536
    assert s["StateDirectory"] == ["hostagent"] and s["RuntimeDirectory"] == ["hostagent"]
    assert s["RuntimeDirectoryPreserve"] == ["yes"], "per-sandbox run dirs must survive a restart"
    assert "kill -HUP $MAINPID" in s["ExecReload"][0]
    # hardening that would break namespaces, TAP or /dev/kvm is absent
    for bad in ("PrivateNetwork", "PrivateDevices", "RestrictNamespaces", "PrivateUsers", "User",
                "DynamicUser", "ProtectKernelTunables"):
        assert bad not in s, bad
    caps = s["CapabilityBoundingSet"][0].split()
    for cap in ("CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_KILL"):
        assert cap in caps
    text = open(UNIT).read()
    assert re.search(r"#.*KillMode=process.*\n(#.*\n)*", text) and "re-adopts" in text, \
        "the unit explains why KillMode=process"


def hostagent_binary():
    p = os.path.join(BUILD, "hostagent")
    if not os.path.exists(p):
        pytest.skip(f"hostagent not built in {BUILD}")
    return p


def test_unit_passes_systemd_analyze_verify(tmp_path):
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify checks that ExecStart exists: point it at the built binary.
    unit = tmp_path / "hostagent.service"
    unit.write_text(open(UNIT).read().replace("/usr/sbin/hostagent", hostagent_binary()))
    p = subprocess.run([sa, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    if "Failed to initialize" in p.stderr or "Operation not permitted" in p.stderr:
        pytest.skip("systemd-analyze cannot run in this container: " + p.stderr.strip()[:200])
    assert p.returncode == 0, p.stderr
    # no warning about our unit (unknown keys, bad values, missing binaries)
    ours = [l for l in p.stderr.splitlines() if "hostagent.service" in l]
    assert not ours, p.stderr


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    for b in ("hostagent", "tools/fcsim/fcsim", "guest/hostagent-guest"):
        if not os.path.exists(os.path.join(BUILD, b)):
            pytest.skip(f"{b} not built in {BUILD} (cmake --install needs every installed target)")
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.run([os.path.join(DEPLOY, "package.sh"), BUILD, str(out)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip().splitlines()[-1]
    assert os.path.exists(path) and path.endswith(".deb"), p.stdout
    return path


def test_deb_metadata(deb):
    info = subprocess.run(["dpkg-deb", "-f", deb], capture_output=True, text=True, check=True).stdout
    fields = dict(l.split(": ", 1) for l in info.splitlines() if ": " in l and not l.startswith(" "))
    assert fields["Package"] == "hostagent"
    version = open(os.path.join(TOP, "CMakeLists.txt")).read()
    assert re.search(r"project\(hostagent VERSION " + re.escape(fields["Version"]), version)
    deps = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    for lib in ("libnghttp2-14", "libssl3", "libsqlite3-0"):
        assert lib in deps, fields["Depends"]
    for d in deps:     # every dependency is a real, installed package here
        subprocess.run(["dpkg", "-s", d], capture_output=True, check=True)
    files = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    for f in ("./usr/sbin/hostagent", "./usr/bin/fcsim", "./lib/systemd/system/hostagent.service",
              "./etc/hostagent/hostagent.conf", "./usr/share/doc/hostagent/OPERATIONS.md"):
        assert f in files, files
    conff = subprocess.run(["dpkg-deb", "--ctrl-tarfile", deb], capture_output=True, check=True).stdout
    assert b"conffiles" in conff


def test_deb_installs_into_scratch_root_and_runs(deb, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", deb, str(root)], check=True)
    exe = root / "usr" / "sbin" / "hostagent"
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert re.match(r"hostagent \d+\.\d+\.\d+", p.stdout), p.stdout
    # the shipped config parses (only missing TLS files would stop it later)
    p = subprocess.run([str(exe), "--config", str(root / "etc/hostagent/hostagent.conf"), "--help"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert (root / "usr/bin/fcsim").exists()
    unit = (root / "lib/systemd/system/hostagent.service").read_text()
    assert unit == open(UNIT).read()
    assert os.stat(root / "etc/hostagent/hostagent.conf").st_mode & 0o077 == 0, "config may hold secrets"


def k8s_docs():
    docs = []
    kdir = os.path.join(DEPLOY, "kubernetes")
    for f in sorted(os.listdir(kdir)):
        if f.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(open(os.path.join(kdir, f))) if d]
    return docs


def test_kubernetes_daemonset():
    docs = k8s_docs()
    assert all("apiVersion" in d and "kind" in d and "metadata" in d for d in docs)
    ds = [d for d in docs if d["kind"] == "DaemonSet"]
    assert len(ds) == 1
    spec = ds[0]["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert ds[0]["spec"]["selector"]["matchLabels"].items() <= \
        ds[0]["spec"]["template"]["metadata"]["labels"].items()
    c = spec["containers"][0]
    assert c["securityContext"]["privileged"] is True
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    by_path = {m["mountPath"]: vols[m["name"]] for m in mounts.values()}
    for path in ("/dev/kvm", "/dev/net/tun", "/run/netns", "/var/lib/hostagent", "/run/hostagent"):
        assert path in by_path and "hostPath" in by_path[path], path
    assert by_path["/dev/kvm"]["hostPath"]["type"] == "CharDevice"
    tls = [v for v in vols.values() if "secret" in v]
    assert tls, "certificates come from a Secret"
    tls_path = [m["mountPath"] for m in mounts.values() if "secret" in vols[m["name"]]][0]
    args = " ".join(c["args"])
    for flag in ("--tls-cert=" + tls_path, "--tls-key=" + tls_path, "--client-ca=" + tls_path):
        assert flag in args, (flag, args)
    # every flag given is one the agent knows
    help_text = subprocess.run([hostagent_binary(), "--help"], capture_output=True, text=True).stdout
    for a in c["args"]:
        assert "--" + a[2:].split("=")[0] in help_text, a
    secret = tls[0]["secret"]["secretName"]
    certs = [d for d in docs if d["kind"] == "Certificate"]
    assert certs and certs[0]["spec"]["secretName"] == secret


def test_nomad_system_job():
    text = open(os.path.join(DEPLOY, "nomad", "hostagent.nomad.hcl")).read()
    body = re.sub(r"<<-?EOT.*?EOT", "", text, flags=re.S)
    code = re.sub(r"#.*", "", body)
    assert code.count("{") == code.count("}"), "balanced blocks"
    assert re.search(r'^job "hostagent" \{', code, re.M)
    assert re.search(r'type\s*=\s*"system"', code)
    assert re.search(r'kill_signal\s*=\s*"SIGTERM"', code)
    assert re.search(r'change_signal\s*=\s*"SIGHUP"', code), "certificate renewal reloads with SIGHUP"
    args = re.search(r"args = \[(.*?)\]", code, re.S).group(1)
    flags = re.findall(r'"(--[a-z-]+)"', args)
    help_text = subprocess.run([hostagent_binary(), "--help"], capture_output=True, text=True).stdout
    for f in flags:
        assert f in help_text, f
    for f in ("--tls-cert", "--tls-key", "--client-ca", "--listen"):
        assert f in flags
