"""CPack builds a .deb from the build directory; installed into a scratch
root it carries the binaries, the systemd unit, the configuration and the
docs, and its hostagent runs (issue 11). deploy/package.sh is tested in
test_deploy.py."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD


@pytest.mark.skipif(not shutil.which("cpack") or not shutil.which("dpkg-deb"), reason="needs cpack and dpkg-deb")
def test_cpack_deb_installs_and_runs(tmp_path):
    out = tmp_path / "pkg"
    p = subprocess.run(["cpack", "-G", "DEB", "-B", str(out)], cwd=BUILD, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    (deb,) = [f for f in os.listdir(out) if f.endswith(".deb")]
    info = subprocess.run(["dpkg-deb", "-I", str(out / deb)], capture_output=True, text=True).stdout
    assert "Package: hostagent" in info and "libnghttp2" in info and "libssl3" in info
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(out / deb), str(root)], check=True)
    for f in ("usr/sbin/hostagent", "usr/bin/fcsim", "usr/sbin/hostagent-guest",
              "usr/lib/systemd/system/hostagent.service", "etc/hostagent/hostagent.conf",
              "usr/share/doc/hostagent/OPERATIONS.md"):
        assert (root / f).exists(), f
    v = subprocess.run([str(root / "usr/sbin/hostagent"), "--version"], capture_output=True, text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("hostagent ")
