"""replay -> LSL / Kafka -> run: cue-locked decisions equal the offline pipeline's, none missing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.pipeline import class_order
from tests.helpers import free_port, wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow


def _decisions(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_parity(setup, decisions):
    cue = [d for d in decisions if d["trigger"] == "cue"]
    got = {d["window_end"]: d["label"] for d in cue}
    assert len(cue) == len(got), "a cue was decided twice"
    assert got == setup.expected, "cue-locked decisions differ from the offline pipeline"
    true = {c.sample + setup.recording.profile.offset_samples + setup.recording.profile.window_samples:
            c.label for c in setup.recording.cues}
    for d in cue:
        assert d["cue_label"] == true[d["window_end"]]
        names, _ = class_order(setup.pipeline)  # setup.proba columns are in the profile's class order
        assert list(d["probabilities"]) == list(names)
        proba = np.array([d["probabilities"][c] for c in names])
        np.testing.assert_allclose(proba, setup.proba[d["window_end"]], atol=1e-3)


class _Thread(threading.Thread):
    def __init__(self, argv):
        super().__init__(daemon=True)
        self.argv, self.code = argv, None

    def run(self):
        self.code = main(self.argv)


def test_replay_lsl_run_parity(stream_setup, tmp_path):
    name = "e2e-" + uuid.uuid4().hex[:6]
    out = tmp_path / "decisions.jsonl"
    n_cues = len(stream_setup.expected)
    # The player runs in its own process, as on a rig: liblsl can crash the process when an outlet is
    # destroyed in one thread while an inlet of the SAME process pulls from it in another.
    player = subprocess.Popen([sys.executable, "-m", "bcistream", "replay", str(stream_setup.recording_path),
                               "--to", "lsl", "--name", name, "--speed", "25", "--chunk", "25",
                               "--wait-consumer", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = free_port()
    runner = _Thread(["run", "--from", f"lsl:{name}", "--model", str(stream_setup.model_dir),
                      "--to", f"jsonl:{out}", "--trigger", "both", "--resolve-timeout", "20",
                      "--metrics-port", str(port), "--no-view", "--duration", "90", "--idle-exit", "1"])
    runner.start()

    import urllib.request

    def scraped():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
        return 'bcistream_engine_decisions_out_total{trigger="hop"}' in text and text

    text = wait_until(scraped, timeout=60, what="/metrics with hop decisions")
    assert 'bcistream_events_total{kind="gap"' not in text  # a clean replay has no gap
    assert "bcistream_engine_samples_in_total" in text
    log, _ = player.communicate(timeout=120)
    assert player.returncode == 0, log.decode(errors="replace")[-2000:]
    wait_until(lambda: out.exists() and sum(d["trigger"] == "cue" for d in _decisions(out)) >= n_cues,
               timeout=30, what="all cue decisions")
    runner.join(60)
    assert runner.code == 0
    _check_parity(stream_setup, _decisions(out))
    hops = [d for d in _decisions(out) if d["trigger"] == "hop"]
    assert len(hops) > 100 and all(d["latency_ms"] >= 0 for d in hops)


def test_replay_kafka_run_parity(stream_setup, kafka_broker, tmp_path):
    raw, markers, dead, decisions = (unique(x) for x in ("raw", "markers", "dead", "decisions"))
    kafka_broker.create_topics({raw: 2, markers: 2, dead: 1, decisions: 1})
    code = main(["replay", str(stream_setup.recording_path), "--to", "kafka", "--name", "subj-1",
                 "--topic", raw, "--markers-topic", markers, "--bootstrap", kafka_broker.bootstrap,
                 "--speed", "max", "--chunk", "25"])
    assert code == 0
    out = tmp_path / "decisions.jsonl"
    code = main(["run", "--from", f"kafka:{raw}", "--model", str(stream_setup.model_dir),
                 "--to", f"jsonl:{out}", "--to", f"kafka:{decisions}", "--trigger", "cue",
                 "--bootstrap", kafka_broker.bootstrap, "--group", unique("g"),
                 "--markers-topic", markers, "--dead-letter-topic", dead,
                 "--kafka-opt", "session_timeout_ms=2000", "--kafka-opt", "heartbeat_interval_ms=300",
                 "--no-view", "--max-decisions", str(len(stream_setup.expected)), "--duration", "60"])
    assert code == 0
    _check_parity(stream_setup, _decisions(out))
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(decisions, bootstrap_servers=kafka_broker.bootstrap,
                             auto_offset_reset="earliest", fetch_max_wait_ms=5)
    got = []
    wait_until(lambda: got.extend(r for rs in consumer.poll(100).values() for r in rs)
               or len(got) >= len(stream_setup.expected), what="decisions on the topic")
    consumer.close()
    assert {r.key for r in got} == {b"subj-1"}
    assert sorted(json.loads(r.value)["window_end"] for r in got) == sorted(stream_setup.expected)


def test_run_refuses_mismatched_lsl_stream(stream_setup, capsys):
    import pylsl

    name = "bad-" + uuid.uuid4().hex[:6]
    info = pylsl.StreamInfo(name, "EEG", 8, 250.0, pylsl.cf_float32, name)
    keep = pylsl.StreamOutlet(info)
    code = main(["run", "--from", f"lsl:{name}", "--model", str(stream_setup.model_dir), "--no-view",
                 "--duration", "5"])
    assert code == 2
    assert "has 8 channels but the model's profile 'bci-iv-2a' expects 22" in capsys.readouterr().err
    del keep
