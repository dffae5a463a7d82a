"""`bcistream demo` over Kafka with the bundled broker (the LSL path runs in the fresh-clone check)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bcistream.cli import main
from bcistream.cli.demo_cmds import next_hint
from tests.test_readme_commands import parse_only


def _hint_commands(line: str) -> list[list[str]]:
    """The commands of the demo's ``next:`` line (without its closing remark), as argv lists."""
    assert line.startswith("next: ")
    body = line.removeprefix("next: ").rsplit(" (", 1)[0]
    return [shlex.split(part)[1:] for part in body.split("; ")]


@pytest.mark.parametrize(("transport", "bootstrap"), [("lsl", None), ("kafka", None), ("kafka", "b:9092")])
def test_next_hint_suggests_the_transport_the_demo_used(transport, bootstrap):
    """After a Kafka demo the hint said `bcistream run --from lsl:NAME`."""
    line = next_hint(transport, "bcistream-demo", "bcistream-demo-A01", Path("d/A01E_raw.fif"), bootstrap)
    commands = _hint_commands(line)
    for argv in commands:
        parse_only(argv)  # each runs as written
    other = "lsl" if transport == "kafka" else "kafka"
    replay, run = commands[-2:]
    assert replay[:4] == ["replay", "d/A01E_raw.fif", "--to", transport]
    assert run[run.index("--from") + 1].startswith(f"{transport}:") and other not in line
    assert "models:/bcistream-demo-A01@champion" in run
    assert ("--bootstrap" in run) == (bootstrap is not None)  # the demo's own broker has stopped


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_over_kafka_with_the_bundled_broker(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    code = main(["demo", "--trials-per-class", "6", "--speed", "60", "--no-view", "--transport", "kafka"])
    out, err = capsys.readouterr()
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
    # The demo makes its topics before the engine subscribes: no "missing topic, check --from" warning.
    assert "topic_missing" not in err and "topic_missing" not in out
    # The live accuracy is over every cue (artifact-rejected trials too, unlike train/classify).
    assert "artifact-rejected trials included" in " ".join(out.split())
    # The run's line and the report give the same latency (the run's said only the last 2 000).
    run_line = re.search(r"decisions from 1 stream\(s\); latency p50 ([\d.]+) ms, p99 ([\d.]+) ms", err)
    assert run_line, err[-3000:]
    run_p50, run_p99 = run_line.groups()
    assert (run_p50, run_p99) == (f"{summary['latency_p50_ms']:.2f}", f"{summary['latency_p99_ms']:.2f}")
    assert f"latency p99 {run_p99} ms" in out
    (hint,) = [line for line in out.splitlines() if line.startswith("next: ")]
    assert "--from kafka:" in hint and "lsl" not in hint, hint


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ctrl_c_during_the_live_replay_says_interrupted_not_a_summary(tmp_path):
    """Ctrl-C in step 2 printed a summary of the part replayed so far, the cues not reached shown
    as lost, and exit 0: it read like the demo's result. Now: one line, exit 130, no summary."""
    from tests.helpers import CliProcess

    home = tmp_path / "home"

    def decided() -> bool:  # the engine is live: decisions are being written
        return any(p.stat().st_size > 0 for p in (home / "demo").glob("*/decisions.jsonl"))

    # Its own process group, as a terminal's job: the Ctrl-C reaches the replay child too.
    with CliProcess(["demo", "--trials-per-class", "6", "--speed", "1", "--no-view", "--transport", "kafka"],
                    str(home), session=True) as demo:
        demo.wait_for(decided, timeout=300, what="the first live decisions")
        assert "2/3 replay" in demo.out
        code = demo.interrupt(timeout=60)
    out = demo.out
    assert code == 130, out[-3000:]
    assert "interrupted (SIGINT): the demo stopped during the live replay" in out, out[-3000:]
    assert "3/3 summary" not in out and "online accuracy" not in out
    assert "Traceback" not in out
    # The broker is in a session of its own: the Ctrl-C does not kill it under the engine's clients.
    assert "ECONNREFUSED" not in out and "ERROR kafka" not in out, out[-3000:]
    (decisions,) = (tmp_path / "home" / "demo").glob("*/decisions.jsonl")
    assert "the decisions so far are in" in out and decisions.stat().st_size > 0
