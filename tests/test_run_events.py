"""Every event is visible: drained by the loop, logged (rate-limited), counted in Prometheus, in the
live view and the summary; the Kafka fetch watch recovers stalls and truncated logs (fake consumer,
injected clock); coverage counts cues and samples."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, generate_latest

from bcistream.cli.stream_view import LiveStats
from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.events import EngineEvent
from bcistream.realtime.loop import run_loop
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.metrics import EngineMetrics
from bcistream.realtime.monitor import RunMonitor
from bcistream.streamer.kafka_health import FetchWatch
from tests.realtime_data import fitted_pipeline, synth_recording


class _Broken:
    """A classifier that fails every batch."""

    def classify(self, features, version):
        raise RuntimeError("model server on fire")


class _Stop:
    def __init__(self, source, stop):
        self.source, self.stop = source, stop

    def __call__(self, _decisions):
        if self.source.exhausted:
            self.stop.set()


def test_failing_classifier_shows_in_metrics_log_view_and_summary(caplog):
    rec = synth_recording(12.0, seed=3)
    engine = Engine(fitted_pipeline(), "1", config=EngineConfig(triggers=("hop", "cue")),
                    classifier=_Broken())
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    monitor = RunMonitor(log_interval_s=3600.0)
    source = MemorySource(rec, chunk_size=25)
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="bcistream.events"):
        written = run_loop(engine, source, [], stop, _Stop(source, stop), metrics=metrics,
                           monitor=monitor)
    assert written == 0
    n = engine.stats()["classifier_errors"]
    assert n > 1
    # Prometheus: one family, labelled by kind and reason.
    text = generate_latest(registry).decode()
    assert f'bcistream_events_total{{kind="classifier",reason="RuntimeError"}} {float(n)}' in text
    # The log: one line for the first failure, the rest rate-limited (not one line per batch).
    lines = [r.getMessage() for r in caplog.records if "classifier" in r.getMessage()]
    assert len(lines) == 1 and "model server on fire" in lines[0]
    # The summary and the live view.
    assert f"classifier {n}" in monitor.events_line()
    cov = monitor.coverage
    assert cov.cues_seen == len(rec.cues) and cov.cues_decided == 0
    assert cov.samples_received == cov.samples_decoded == rec.n_samples
    assert f"decided cues 0/{len(rec.cues)}" in cov.line()
    view = LiveStats().table("1", lambda: {"events": monitor.events_line()})
    assert f"classifier {n}" in str(view.title)


def test_new_event_kinds_flow_through_without_code_changes(caplog):
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    clock = [0.0]
    monitor = RunMonitor(log_interval_s=5.0, on_events=lambda evs: metrics.events_seen(evs),
                         clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="bcistream.events"):
        for i in range(3):
            monitor.record([EngineEvent("clock_step", "s1", 0, "backwards", f"step {i}")])
        clock[0] = 6.0
        monitor.record([EngineEvent("clock_step", "s1", 0, "backwards", "step 3")])
    assert registry.get_sample_value("bcistream_events_total",
                                     {"kind": "clock_step", "reason": "backwards"}) == 4
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and "and 2 more clock_step" in msgs[1]
    assert monitor.events_line() == "events: clock_step 4"


class _TP:
    def __init__(self, topic, partition):
        self.topic, self.partition = topic, partition


class _Pos:
    def __init__(self, offset):
        self.offset = offset


class _FakeConsumer:
    """What FetchWatch reads from a kafka-python consumer: assignment, highwater, positions."""

    def __init__(self, tp, pos, high):
        self.tp, self.high = tp, high
        self.config = {"fetch_max_wait_ms": 5}
        self._fetcher = type("F", (), {"config": {"fetch_max_wait_ms": 5}})()
        self._subscription = type("S", (), {"assignment": {tp: type("A", (), {"position": _Pos(pos)})()}})()
        self.seeks = []

    def assignment(self):
        return {self.tp}

    def highwater(self, tp):
        return self.high

    def seek(self, tp, offset):
        self.seeks.append(offset)
        self._subscription.assignment[tp].position = _Pos(offset)

    def beginning_offsets(self, tps):
        return dict.fromkeys(tps, 0)


def test_fetch_watch_recovers_a_stalled_consumer_and_reports_lag():
    tp = _TP("eeg.raw", 1)
    consumer = _FakeConsumer(tp, pos=100, high=400)
    now = [0.0]
    watch = FetchWatch(consumer, stall_s=1.0, check_every_s=0.0, clock=lambda: now[0])
    assert watch.check() == [] and watch.lag == {"eeg.raw[1]": 300}
    now[0] = 0.5
    assert watch.check() == []  # behind, not yet long enough
    now[0] = 1.2
    (ev,) = watch.check()
    assert ev.kind == "stall" and ev.size == 300 and "fetch_max_wait_ms=10" in ev.detail
    assert consumer._fetcher.config["fetch_max_wait_ms"] == 10 and consumer.seeks == [100]
    # Progress resets the timer; caught up (lag 0) never counts as a stall.
    consumer.seek(tp, 400)
    now[0] = 5.0
    assert watch.check() == [] and watch.lag == {"eeg.raw[1]": 0}
    now[0] = 9.0
    assert watch.check() == [] and watch.stalls == 1


def test_fetch_watch_goes_back_when_the_log_was_recreated():
    tp = _TP("eeg.markers", 0)
    consumer = _FakeConsumer(tp, pos=50, high=3)  # broker restarted without the old records
    watch = FetchWatch(consumer, check_every_s=0.0, on_truncated=lambda t, p, h: 0)
    (ev,) = watch.check()
    assert ev.kind == "log_truncated" and "reading again from offset 0" in ev.detail
    assert consumer.seeks == [0]


def _logged_once(caplog, events, needle):
    """Record ``events`` as a run does; the lines (of any logger) that mention ``needle``."""
    with caplog.at_level(logging.DEBUG):
        RunMonitor(log_interval_s=0.0).record(events)
    return [(r.name, r.getMessage()) for r in caplog.records if needle in r.getMessage()]


def test_each_kafka_source_event_is_logged_once_by_the_events_logger(caplog):
    """A stall, a truncated log and a dead letter were logged by their component AND by the run's
    event monitor: each must be one line, from ``bcistream.events`` (which also counts it)."""
    from bcistream.realtime.events import EventQueue
    from bcistream.streamer.dead_letter import DeadLetter, Rejections
    from bcistream.streamer.kafka_stats import KafkaSourceStats

    now = [0.0]
    with caplog.at_level(logging.DEBUG):
        stalled = FetchWatch(_FakeConsumer(_TP("eeg.raw", 1), pos=100, high=400), stall_s=1.0,
                             check_every_s=0.0, clock=lambda: now[0])
        stalled.check()
        now[0] = 1.5
        stall = stalled.check()
        truncated = FetchWatch(_FakeConsumer(_TP("eeg.markers", 0), pos=50, high=3), check_every_s=0.0,
                               on_truncated=lambda t, p, h: 0).check()
        queue = EventQueue()
        producer = type("P", (), {"send": lambda self, *a, **k: None})()
        record = type("R", (), {"topic": "eeg.raw", "partition": 2, "offset": 77, "key": b"s1",
                                "value": b"junk"})()
        Rejections(DeadLetter(producer, "eeg.dead"), "localhost:1", None, KafkaSourceStats(),
                   queue).send(record, "undecodable", "not a chunk")
    for events, needle in ((stall, "no progress for"), (truncated, "past the end of the log"),
                           (queue.drain(), "eeg.raw[2]@77")):
        assert len(events) == 1
        lines = _logged_once(caplog, events, needle)
        assert [name for name, _ in lines] == ["bcistream.events"], lines


def test_cue_pending_at_the_end_of_the_run_is_reported_in_the_summary():
    # The recording stops half way through the last cue's window: that cue can never be decided.
    import dataclasses

    full = synth_recording(17.0, seed=4)
    last = full.cues[-1].sample
    rec = dataclasses.replace(full, data=full.data[:, :last + 300])
    engine = Engine(fitted_pipeline(), "1", config=EngineConfig(triggers=("cue",)))
    registry = CollectorRegistry()
    monitor = RunMonitor(log_interval_s=3600.0)
    source = MemorySource(rec, chunk_size=25)
    stop = threading.Event()
    written = run_loop(engine, source, [], stop, _Stop(source, stop), metrics=EngineMetrics(registry),
                       monitor=monitor)
    n = len(rec.cues)
    assert written == n - 1
    cov = monitor.coverage
    assert cov.cues_decided == n - 1 and cov.cues_lost == 1
    assert monitor.counts[("cue_lost", "stream-ended")] == 1
    assert "cue_lost 1" in monitor.events_line()
    assert engine.stats()["cues_lost"] == 1
    text = generate_latest(registry).decode()
    assert 'bcistream_events_total{kind="cue_lost",reason="stream-ended"} 1.0' in text
