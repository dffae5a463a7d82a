"""The end of a Kafka run says what it did not read, and a missing topic is never silent.

Real broker (tansu, which creates a topic when a consumer subscribes to it), real ``bcistream run``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time

import pytest

from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.loop import run_loop
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.monitor import RunMonitor
from bcistream.replay import replay
from bcistream.replay.player import KafkaTarget
from bcistream.streamer.kafka_source import KafkaSource
from tests.kafka_broker import unique
from tests.realtime_data import fitted_pipeline, synth_recording


def _produce(broker, rec, raw, markers):
    target = KafkaTarget(broker.bootstrap, "s1", rec.sfreq, raw, markers)
    try:
        replay(rec, target, speed=None, chunk=10)
    finally:
        target.close()
    return -(-rec.n_samples // 10)  # messages on the data topic


def _run(broker, model, raw, markers, *extra):
    from bcistream.cli import main

    return main(["run", "--from", f"kafka:{raw}", "--markers-topic", markers, "--model", str(model),
                 "--bootstrap", broker.bootstrap, "--group", unique("g"), "--no-view",
                 "--updates-topic", "", *extra])


@pytest.mark.timeout(180)
def test_a_run_stopped_before_the_end_of_the_topic_says_how_much_it_left_unread(
        kafka_broker, stream_setup, tmp_path, capsys, caplog):
    raw, markers = unique("end"), unique("end.m")
    total = _produce(kafka_broker, stream_setup.recording, raw, markers)
    with caplog.at_level(logging.WARNING, logger="bcistream.events"):
        code = _run(kafka_broker, stream_setup.model_dir, raw, markers, "--trigger", "hop",
                    "--max-decisions", "1", "--duration", "60", "--to", f"jsonl:{tmp_path / 'd.jsonl'}")
    err = capsys.readouterr().err
    assert code == 0
    last = [line for line in err.splitlines() if "decided cues" in line][-1]
    found = re.search(rf"stopped with (\d+) messages unread on {re.escape(raw)} \(lag\); their cues "
                      r"are not decided", last)
    assert found, last
    assert 0 < int(found.group(1)) < total
    assert "unread 1" in last  # in the events of the summary too
    assert any(r.getMessage().startswith("unread (lag)") and raw in r.getMessage() for r in caplog.records)


@pytest.mark.timeout(180)
def test_a_typo_in_the_data_or_marker_topic_is_said_at_start(kafka_broker, stream_setup, capsys, caplog):
    raw, markers = unique("typo"), unique("typo.m")
    _produce(kafka_broker, stream_setup.recording, raw, markers)
    wrong_raw, wrong_markers = unique("eeg.typo"), unique("eeg.markerz")
    with caplog.at_level(logging.WARNING, logger="bcistream.events"):
        assert _run(kafka_broker, stream_setup.model_dir, wrong_raw, markers, "--duration", "2") == 0
        assert _run(kafka_broker, stream_setup.model_dir, raw, wrong_markers, "--trigger", "hop",
                    "--max-decisions", "5", "--duration", "60", "--to", "jsonl:/dev/null") == 0
    capsys.readouterr()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("topic_missing")]
    for topic, flag in ((wrong_raw, "--from"), (wrong_markers, "--markers-topic")):
        assert any(f"topic '{topic}' does not exist (yet) on the broker at {kafka_broker.bootstrap}" in m
                   and f"check {flag}" in m for m in said), said
    assert not any(f"'{raw}'" in m or f"'{markers}'" in m for m in said), said  # existing: no warning


@pytest.mark.timeout(120)
def test_a_missing_topic_is_said_again_when_it_stays_missing_or_empty(kafka_broker):
    typo = unique("eeg.typo")
    source = KafkaSource(kafka_broker.bootstrap, typo, group=unique("g"), markers_topic=None,
                         topic_wait_s=1.0)
    try:
        first = source.events.drain()
        assert [e.kind for e in first] == ["topic_missing"] and f"'{typo}' does not exist" in first[0].detail
        deadline, again = time.monotonic() + 20, []
        while not again and time.monotonic() < deadline:
            source.poll(0.1)
            again = [e for e in source.events.drain() if e.kind == "topic_missing"]
        # tansu created it when the consumer subscribed: it exists now, but nothing was produced.
        assert len(again) == 1 and f"'{typo}'" in again[0].detail
        assert "still" in again[0].detail
        for _ in range(20):
            source.poll(0.1)
        assert not [e for e in source.events.drain() if e.kind == "topic_missing"]  # once only
    finally:
        source.close()


class _Endless:
    """A source whose end the loop cannot see (no ``exhausted``): a live input."""

    def __init__(self, inner):
        self.inner = inner

    def poll(self, timeout=0.0):
        return self.inner.poll(timeout)

    def resume_point(self):
        return {}

    def commit(self, point):
        pass


def test_cues_pending_when_the_run_is_stopped_are_lost_as_run_stopped():
    full = synth_recording(17.0, seed=4)
    rec = dataclasses.replace(full, data=full.data[:, :full.cues[-1].sample + 300])
    engine = Engine(fitted_pipeline(), "1", config=EngineConfig(triggers=("cue",)))
    monitor = RunMonitor(log_interval_s=3600.0)
    inner = MemorySource(rec, chunk_size=25)
    stop = threading.Event()
    run_loop(engine, _Endless(inner), [], stop, lambda _d: inner.exhausted and stop.set(), monitor=monitor)
    assert monitor.counts[("cue_lost", "run-stopped")] == 1
    assert ("cue_lost", "stream-ended") not in monitor.counts
    (ev,) = [e for e in monitor.recent if e.kind == "cue_lost"]
    assert "the run stopped" in ev.detail


@pytest.mark.timeout(120)
def test_two_missing_topics_are_one_line_naming_each_with_its_option(kafka_broker):
    """Both named: the run's log shows one line per kind at a time, so two events hid the data
    topic's (a typo in --from was reported as a marker-topic problem)."""
    typo, markers = unique("eeg.rwa"), unique("eeg.markers")
    source = KafkaSource(kafka_broker.bootstrap, typo, group=unique("g"), markers_topic=markers,
                         topic_wait_s=60.0)
    try:
        (event,) = [e for e in source.events.drain() if e.kind == "topic_missing"]
    finally:
        source.close()
    assert f"topic '{typo}' does not exist (yet) (check --from kafka:TOPIC)" in event.detail
    assert f"topic '{markers}' does not exist (yet) (check --markers-topic)" in event.detail


@pytest.mark.timeout(120)
def test_an_empty_data_topic_is_said_but_an_empty_marker_topic_is_not(kafka_broker):
    """The same typo twice: the first run's subscription created the topic, empty, and the second
    run said nothing at all (events: none, exit 0). Real broker; the check's clock is stepped."""
    from kafka import KafkaConsumer

    from bcistream.streamer.kafka_topics import TopicCheck

    typo, markers = unique("eeg.rwb"), unique("eeg.markers")
    kafka_broker.create_topics({typo: 1, markers: 1})  # both exist, both empty
    now = [0.0]
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        check = TopicCheck(consumer, kafka_broker.bootstrap,
                           {typo: "--from kafka:TOPIC", markers: "--markers-topic"}, wait_s=5.0,
                           clock=lambda: now[0], empty_ok={markers}, empty_wait_s=30.0)
        assert check.start() == []  # they exist
        now[0] = 10.0
        assert check.check() == []  # a producer started with the engine has time to send
        now[0] = 31.0
        (event,) = check.check()
        now[0] = 100.0
        assert check.check() == [] and check.finish() == []  # once
        # A run shorter than the wait says it at its end instead.
        now[0] = 0.0
        short = TopicCheck(consumer, kafka_broker.bootstrap, {typo: "--from kafka:TOPIC"}, wait_s=5.0,
                           clock=lambda: now[0], empty_wait_s=30.0)
        assert short.start() == []
        now[0] = 15.0
        assert short.check() == []
        (at_end,) = short.finish()
    finally:
        consumer.close()
    assert f"topic '{typo}' holds no message" in event.detail and "check --from kafka:TOPIC" in event.detail
    assert markers not in event.detail  # no cue yet is normal for a marker topic
    assert f"topic '{typo}' held no message during the whole run" in at_end.detail


@pytest.mark.timeout(120)
def test_replay_makes_its_topics_before_the_first_cue(kafka_broker, stream_setup):
    """The marker topic appeared only with the first cue (a minute into a 2a session): an engine
    started meanwhile warned that it was missing."""
    from kafka import KafkaConsumer

    raw, markers = unique("mk"), unique("mk.m")
    target = KafkaTarget(kafka_broker.bootstrap, "s1", stream_setup.recording.sfreq, raw, markers)
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        assert {raw, markers} <= set(consumer.topics())
    finally:
        consumer.close()
        target.close()


@pytest.mark.timeout(180)
def test_decisions_made_again_from_warm_up_data_are_counted_apart(kafka_broker, stream_setup, tmp_path,
                                                                  capsys):
    """The final line said 180 decisions while the sink got 151: the rest were made again from the
    re-read warm-up messages and withheld (already published by the group's earlier run)."""
    raw, markers = unique("again"), unique("again.m")
    _produce(kafka_broker, stream_setup.recording, raw, markers)
    from bcistream.cli import main

    group = unique("g")
    for name in ("a", "b"):  # the same group twice: the second run re-reads before its commit
        code = main(["run", "--from", f"kafka:{raw}", "--markers-topic", markers, "--model",
                     str(stream_setup.model_dir), "--bootstrap", kafka_broker.bootstrap, "--group", group,
                     "--no-view", "--updates-topic", "", "--trigger", "hop", "--max-decisions", "120",
                     "--duration", "60", "--to", f"jsonl:{tmp_path / name}.jsonl"])
        assert code == 0
    err = capsys.readouterr().err
    last = [line for line in err.splitlines() if "decisions from" in line][-1]
    found = re.match(r"(\d+) decisions from 1 stream\(s\) \((\d+) of them made again from re-read data "
                     r"and not sent: already published\)", last)
    assert found, last
    made, withheld = map(int, found.groups())
    sent = len((tmp_path / "b.jsonl").read_text().splitlines())
    assert withheld > 0 and sent == made - withheld
