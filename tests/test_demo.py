"""`bcistream demo` over Kafka with the bundled broker (the LSL path runs in the fresh-clone check)."""

from __future__ import annotations

import json

import pytest

from bcistream.cli import main


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_over_kafka_with_the_bundled_broker(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    code = main(["demo", "--trials-per-class", "6", "--speed", "60", "--no-view", "--transport", "kafka"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    reports = list((tmp_path / "home" / "demo").glob("*/summary.json"))
    assert len(reports) == 1
    summary = json.loads(reports[0].read_text())
    # 6 trials per class in E = 24 cues; every one decided live and equal to the offline label.
    assert summary["cue_trials"] == 24 and summary["misaligned_cues"] == 0
    assert summary["cues_decided"] == summary["cues_expected"] == 24  # default Kafka settings: no stall
    assert summary["agreement"] == 1.0
    assert summary["online_accuracy"] == summary["offline_accuracy"]
    assert summary["latency_p99_ms"] > 0 and summary["decisions"] > summary["cue_trials"]
    for name in ("confusion.png", "latency.png", "decisions.png", "decisions.jsonl"):
        assert (reports[0].parent / name).stat().st_size > 0
    assert "online accuracy" in out and "model version" in out
