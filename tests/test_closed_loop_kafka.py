"""``bcistream run --record --poll-interval`` through a real Kafka-protocol broker: trials recorded
from the live topic, and a promotion announced on ``model-updates`` swapped in long before the next
registry poll."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from bcistream.cli import main
from bcistream.streamer.model_updates import ModelUpdatePublisher
from bcistream.training.recorded import load_recorded
from bcistream.training.registry import set_alias
from tests.closed_loop_support import register
from tests.helpers import free_port, wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow


class _Thread(threading.Thread):
    def __init__(self, argv):
        super().__init__(daemon=True)
        self.argv, self.code = argv, None

    def run(self):
        self.code = main(self.argv)


def _cue_decisions(path):
    if not path.exists():
        return []
    rows = (json.loads(x) for x in path.read_text().splitlines() if x.strip())
    return [d for d in rows if d["trigger"] == "cue"]


def _value(text: str, name: str) -> float:
    line = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line[0].split()[-1]) if line else -1.0


def test_run_records_from_kafka_and_swaps_on_model_update(stream_setup, kafka_broker, tmp_path, monkeypatch):
    name = "kafka-loop"
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    v1 = register(stream_setup.pipeline, uri, name, "champion")
    v2 = register(stream_setup.pipeline, uri, name, None)  # same decoder, new version: compatible
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    raw, markers, dead, updates = (unique(x) for x in ("raw", "markers", "dead", "updates"))
    kafka_broker.create_topics({raw: 2, markers: 1, dead: 1, updates: 1})
    n = len(stream_setup.expected)
    store = tmp_path / "store"
    out = tmp_path / "decisions.jsonl"
    port = free_port()

    def replay(stream: str) -> None:
        assert main(["replay", str(stream_setup.recording_path), "--to", "kafka", "--name", stream,
                     "--topic", raw, "--markers-topic", markers, "--bootstrap", kafka_broker.bootstrap,
                     "--speed", "max", "--chunk", "25"]) == 0

    replay("subj-a")
    runner = _Thread(["run", "--from", f"kafka:{raw}", "--model", f"models:/{name}@champion",
                      "--to", f"jsonl:{out}", "--trigger", "cue", "--bootstrap", kafka_broker.bootstrap,
                      "--group", unique("g"), "--markers-topic", markers, "--dead-letter-topic", dead,
                      "--kafka-opt", "session_timeout_ms=2000", "--kafka-opt", "heartbeat_interval_ms=300",
                      "--record", "--record-store", str(store), "--poll-interval", "120",
                      "--updates-topic", updates, "--metrics-port", str(port), "--no-view",
                      "--max-decisions", str(2 * n), "--duration", "120"])
    runner.start()

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    try:
        wait_until(lambda: len(_cue_decisions(out)) >= n, 60, what="decisions of the first stream")
        wait_until(lambda: _value(metrics(), "bcistream_recorded_trials_total") >= n, 30,
                   what=f"{n} trials of the first stream stored")
        set_alias(uri, name, "champion", v2)
        publisher = ModelUpdatePublisher(kafka_broker.bootstrap, updates)
        t0 = time.monotonic()
        publisher.publish(name, v2, v1)
        publisher.close()
        wait_until(lambda: f'bcistream_model_info{{version="{v2}"}} 1.0' in metrics(), 30,
                   what="the swap announced on the topic")
        took = time.monotonic() - t0
        assert took < 30  # far below the 120 s registry poll: the topic woke the watcher
        assert 'bcistream_events_total{kind="swap",reason=""} 1.0' in metrics()
        replay("subj-b")
        runner.join(90)
    finally:
        runner.join(30)
    assert runner.code == 0
    cue = _cue_decisions(out)
    assert {d["model_version"] for d in cue if d["stream_id"] == "subj-a"} == {v1}
    assert {d["model_version"] for d in cue if d["stream_id"] == "subj-b"} == {v2}
    rec = load_recorded(store)
    assert len(rec) == 2 * n
    by_stream = {(s, v) for s, v in zip(rec.stream_ids, rec.model_versions, strict=True)}
    assert by_stream == {("subj-a", v1), ("subj-b", v2)}
    assert all(d is not None for d in rec.decided)  # every trial carries the engine's decision
