"""benchmarks/run_all.py: runs every bench module, survives a failing one, writes the summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_runner():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_records_a_failing_module_and_goes_on(tmp_path, monkeypatch):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_good.py").write_text(
        "import os\n"
        "def run():\n"
        "    return [{'id': 'x', 'measure': 'threads', 'value': int(os.environ['OPENBLAS_NUM_THREADS']),\n"
        "             'unit': '', 'goal': 1, 'baseline': None, 'met': True, 'extra': 'kept in own json'}]\n")
    (bench / "bench_broken.py").write_text("def run():\n    raise RuntimeError('boom')\n")
    runner = load_runner()
    # The child re-runs the same file: put a copy beside the fake modules.
    (bench / "run_all.py").write_text((ROOT / "benchmarks" / "run_all.py").read_text())
    monkeypatch.setattr(runner, "HERE", bench)
    monkeypatch.setattr(runner, "__file__", str(bench / "run_all.py"))
    out = tmp_path / "results"
    assert runner.main(["--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["id"] for r in summary] == ["bench_broken:error", "x"]
    assert "boom" in summary[0]["measure"] and summary[0]["met"] is False
    assert summary[1]["value"] == 1 and set(summary[1]) == set(runner.SUMMARY_KEYS)
    assert json.loads((out / "bench_good.json").read_text())["rows"][0]["extra"] == "kept in own json"
    assert "| x | threads | 1 |" in (out / "summary.md").read_text()


def test_a_module_may_declare_a_longer_timeout(tmp_path, monkeypatch):
    runner = load_runner()
    (tmp_path / "bench_slow.py").write_text("TIMEOUT_S = 3600\n\ndef run():\n    return []\n")
    (tmp_path / "bench_fast.py").write_text("def run():\n    return []\n")
    monkeypatch.setattr(runner, "HERE", tmp_path)
    assert runner.module_timeout("bench_slow", 900.0) == 3600.0
    assert runner.module_timeout("bench_fast", 900.0) == 900.0
