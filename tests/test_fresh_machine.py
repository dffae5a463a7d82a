"""Fresh-machine check: clone the repo and run `make demo` exactly as README says.

A missing install step (a package installed by hand, a file not committed) fails here, because
the clone has its own new `.venv` and no `../shared` beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_demo_in_a_fresh_clone(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("this check needs git and a git checkout of bcistream")
    clone = tmp_path / "bcistream"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "BCISTREAM_"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if ".venv" not in p)
    # Reuse the machine's pip cache (the registries are reachable, but there is no need to
    # download every wheel again); the suite moves XDG_CACHE_HOME to a temp folder.
    env["PIP_CACHE_DIR"] = str(Path.home() / ".cache" / "pip")
    proc = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=1700)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert (clone / ".venv" / "bin" / "bcistream").exists()
    online = re.search(r"online accuracy[^0-9]*([0-9.]+)", out)
    offline = re.search(r"offline accuracy[^0-9]*([0-9.]+)", out)
    assert online and offline, out[-4000:]
    assert float(online.group(1)) == pytest.approx(float(offline.group(1)), abs=1e-9)
    assert float(online.group(1)) > 0.3  # four classes: chance is 0.25
    assert "latency p99" in out and "model version" in out
    reports = list((clone / "bcistream-data" / "demo").glob("*/confusion.png"))
    assert reports, "the demo report folder has no confusion matrix"
