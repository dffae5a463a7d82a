"""Every curl example in README.md and docs/ runs against a live `bcistream serve` and gets a 200.

The examples' setup lines (``python -c ...`` writing trials.json / trials.npy) run first, in a
scratch folder holding the recording and labels the examples name (A01E.gdf, A01E.mat: the 2a-shaped
fixtures). The docs use version "1" for /classify_features: the first registered model.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving_support import MODEL_NAME, Server, make_registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_URL = "http://127.0.0.1:3000"


def doc_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for every ``curl`` and ``python -c`` line of the bash blocks, in order."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line.startswith(("curl ", "python -c ")):
                    out.append((path.name, line))
    return out


def test_docs_have_curl_examples_with_real_json():
    cmds = [c for _, c in doc_commands() if c.startswith("curl ")]
    assert len(cmds) >= 10
    for cmd in cmds:
        assert "..." not in cmd, cmd
        for body in re.findall(r"-d '([^']*)'", cmd):
            json.loads(body)  # literal bodies are real JSON


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reg = make_registry(tmp_path_factory.mktemp("docs-curl"), n_versions=1)
    srv = Server({"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
                  "BCISTREAM_TRACKING_URI": reg.tracking_uri, "BCISTREAM_POLL_S": "0"},
                 cwd=tmp_path_factory.mktemp("docs-curl-run"))
    yield srv
    srv.stop()


def test_every_curl_example_runs(server, tmp_path, fixtures_dir):
    shutil.copy(fixtures_dir / "A99E-synthetic.gdf", tmp_path / "A01E.gdf")
    shutil.copy(fixtures_dir / "A99E.mat", tmp_path / "A01E.mat")
    ran = 0
    for where, cmd in doc_commands():
        cmd = cmd.replace(DOC_URL, server.url)
        if cmd.startswith("python -c "):
            cmd = sys.executable + cmd[len("python"):]
            done = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, (where, cmd[:200], done.stderr[-500:])
            continue
        code_cmd = cmd.split(" #")[0] + " -o body.out -w '%{http_code}'"
        done = subprocess.run(["bash", "-c", code_cmd], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (where, cmd, done.stderr[-500:])
        body = (tmp_path / "body.out").read_text()
        assert done.stdout == "200", (where, cmd, done.stdout, body[:300])
        if "/metrics" not in cmd:
            answer = json.loads(body)
            if "/classify" in cmd and "classify_file" not in cmd:
                assert answer["labels"] and len(answer["labels"]) == len(answer["probabilities"])
        ran += 1
    assert ran >= 10
