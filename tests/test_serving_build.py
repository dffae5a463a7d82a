"""`bentoml build` accepts the repository's bentofile.yaml offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bentoml_build_works_offline(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
           # bentoml finds uv next to the interpreter it runs with.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "bentoml", "build", str(ROOT)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bentos = list((tmp_path / "bentoml" / "bentos" / "bcistream").iterdir())
    bento = next(p for p in bentos if (p / "bento.yaml").exists())
    assert (bento / "src" / "bcistream" / "serving" / "service.py").exists()
    assert (bento / "src" / "bcistream" / "data" / "profiles" / "bci-iv-2a.toml").exists()
    spec = yaml.safe_load((bento / "apis" / "openapi.yaml").read_text())
    # BentoML's own document lists the routes BentoML answers; the JSON and .npy routes are answered
    # in front of it and described by GET /docs.json (tests/test_serving_api.py).
    assert "/classify_file" in set(spec["paths"])
    assert "mlflow>=3.0" in (bento / "env" / "python" / "requirements.txt").read_text()
