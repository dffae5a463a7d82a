"""The loop over a source and sinks (at-least-once) and the prometheus metrics."""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import CollectorRegistry

from bcistream.realtime.engine import Engine
from bcistream.realtime.loop import run_loop
from bcistream.realtime.memory import ListSink, MemorySource
from bcistream.realtime.metrics import EngineMetrics
from bcistream.realtime.protocols import Sink, Source
from tests.realtime_data import fitted_pipeline, synth_recording


class OrderedSink(ListSink):
    """Records which source position was committed when each flush happened."""

    def __init__(self, source):
        super().__init__()
        self.source = source
        self.committed_at_flush = []

    def flush(self):
        super().flush()
        self.committed_at_flush.append((self.source.committed, self.source.resume_point()))


def test_loop_writes_flushes_then_commits_and_stops():
    pipe = fitted_pipeline()
    rec = synth_recording(10.0, seed=41)
    engine = Engine(pipe, "1")
    source = MemorySource({"a": rec, "b": rec}, chunk_size=50)
    assert isinstance(source, Source)
    sink, other = OrderedSink(source), ListSink()
    assert isinstance(sink, Sink)
    stop = threading.Event()
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    ticks = []

    def on_tick(decisions):
        ticks.append(len(decisions))
        if source.exhausted:
            stop.set()

    written = run_loop(engine, source, [sink, other], stop, on_tick, metrics=metrics)
    assert written == len(sink.decisions) == len(other.decisions) == sum(ticks) > 0
    # Every flush happened before the batch's position was committed (at-least-once).
    assert all(committed is None or committed < position
               for committed, position in sink.committed_at_flush[:-1])
    assert source.committed == source.resume_point()
    # Replaying already committed data (a restart before commit) decides nothing twice.
    again = MemorySource({"a": rec, "b": rec}, chunk_size=50)
    stop.clear()
    assert run_loop(engine, again, [other], stop, lambda d: again.exhausted and stop.set()) == 0

    value = registry.get_sample_value
    assert value("bcistream_engine_samples_in_total") == 2 * rec.n_samples
    hop = value("bcistream_engine_decisions_out_total", {"trigger": "hop"})
    cue = value("bcistream_engine_decisions_out_total", {"trigger": "cue"})
    assert hop + cue == written and cue == sum(d.trigger == "cue" for d in sink.decisions)
    assert value("bcistream_engine_decision_latency_seconds_count") == written
    assert value("bcistream_engine_active_streams") == 2
    assert value("bcistream_model_info", {"version": "1"}) == 1
    assert value("bcistream_events_total", {"kind": "gap", "reason": "missing"}) is None  # no gap


def test_metrics_count_refused_chunks_and_gaps():
    pipe = fitted_pipeline()
    rec = synth_recording(6.0, seed=42, nan_at=(2.0, 2.2))
    engine = Engine(pipe, "1")
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    source = MemorySource(rec, chunk_size=25, missing="send")
    decisions = []
    while not source.exhausted:
        got = engine.process(source.poll())
        metrics.observe(engine, got, engine.events.drain())
        decisions += got
    n_bad = engine.stats()["refused"]
    assert n_bad == 2  # samples 500..550 in two chunks
    value = registry.get_sample_value
    assert value("bcistream_events_total", {"kind": "refused", "reason": "non-finite"}) == n_bad
    assert value("bcistream_engine_samples_in_total") == rec.n_samples - 50
    # Nothing decided on a window touching the NaN chunks; the stream resumes after a full window.
    ends = [d.window_end for d in decisions]
    assert ends and not [e for e in ends if 500 < e < 550 + 750]
    assert max(ends) > 550 + 750
    assert np.isnan(rec.data[:, 500:550]).all()


def test_loop_restores_the_garbage_collector():
    import gc

    before = gc.get_threshold()
    pipe = fitted_pipeline()
    source = MemorySource(synth_recording(4.0, seed=43), chunk_size=100)
    stop = threading.Event()
    seen = []

    def on_tick(_decisions):
        seen.append(gc.get_threshold()[0])
        if source.exhausted:
            stop.set()

    run_loop(Engine(pipe, "1"), source, [ListSink()], stop, on_tick, gc_threshold=12345)
    assert set(seen) == {12345}
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_idle_loop_collects_the_young_generation_before_it_grows():
    """An idle iteration collects the young generation (short pauses), not the 50 000 threshold."""
    import gc

    from bcistream.realtime.gctune import IDLE_COLLECT

    pipe = fitted_pipeline()
    source = MemorySource(synth_recording(1.0, seed=44), chunk_size=250)
    stop = threading.Event()
    keep, counts, young = [], [], []

    def on_gc(phase, info):
        if phase == "stop" and info["generation"] == 0:
            young.append(gc.get_threshold()[0])

    def on_tick(_decisions):
        counts.append(gc.get_count()[0])
        keep.extend([] for _ in range(200))  # survivors: the young generation grows by 200 a tick
        if len(counts) >= 60:
            stop.set()

    gc.callbacks.append(on_gc)
    try:
        run_loop(Engine(pipe, "1"), source, [ListSink()], stop, on_tick, gc_threshold=50000,
                 poll_timeout=0.0)
    finally:
        gc.callbacks.remove(on_gc)
    assert source.exhausted
    assert young.count(50000) >= 5, "idle iterations collected the young generation"
    # Without idle collections the count would reach 60 * 200 = 12 000 before the threshold.
    assert max(counts[10:]) < IDLE_COLLECT + 2 * 200


def test_collect_when_idle_only_with_enough_objects_and_the_collector_on():
    import gc

    from bcistream.realtime.gctune import collect_when_idle

    old = gc.get_threshold()
    gc.set_threshold(100000, old[1], old[2])  # no automatic collection while the test allocates
    try:
        gc.collect()
        assert not collect_when_idle(min_objects=10**9)
        keep = [[] for _ in range(2000)]
        assert collect_when_idle(min_objects=1000)
        assert gc.get_count()[0] < 1000
        gc.disable()
        try:
            keep += [[] for _ in range(2000)]
            assert not collect_when_idle(min_objects=1000)
        finally:
            gc.enable()
    finally:
        gc.set_threshold(*old)
    assert len(keep) == 4000
