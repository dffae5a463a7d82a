"""Kafka engines in a consumer group: partition split, hand-over, restart, durable broker restart.

Every decision is accounted for: across engines each cue of each stream is decided exactly once
and equals the offline pipeline's label (the new owner re-reads enough history to rebuild state).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from kafka.partitioner.default import murmur2

from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.loop import run_loop
from bcistream.realtime.records import Decision
from bcistream.streamer.kafka_sink import KafkaChunkProducer
from bcistream.streamer.kafka_source import KafkaSource
from bcistream.streamer.sinks import FilteredSink
from tests.helpers import wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow

FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}
#: tansu's s3:// storage keeps one object per record batch and fetches hundreds of tiny batches
#: from moto too slowly (a consumer stalled on 200 one-record batches): produce big batches there.
BATCHED = {"linger_ms": 200, "batch_size": 1 << 20}
CHUNK = 25


class _ListSink:
    def __init__(self, name: str, out: list, lock: threading.Lock) -> None:
        self.name, self.out, self.lock = name, out, lock

    def write(self, decisions: Sequence[Decision]) -> None:
        with self.lock:
            self.out.extend((self.name, d) for d in decisions)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Worker:
    """One engine process: KafkaSource -> Engine -> sink, in a thread."""

    def __init__(self, name, broker, names, group, pipeline, out, lock):
        self.source = KafkaSource(broker.bootstrap, names["raw"], group=group,
                                  markers_topic=names["markers"], dead_letter_topic=names["dead"],
                                  n_channels=22, sfreq=250.0, kafka_config=FAST)
        self.engine = Engine(pipeline, version="1", config=EngineConfig(triggers=("cue",)))
        self.stop = threading.Event()
        sink = FilteredSink(_ListSink(name, out, lock), self.source.replayed)
        self.thread = threading.Thread(target=run_loop, args=(self.engine, self.source, [sink], self.stop),
                                       kwargs={"poll_timeout": 0.02}, daemon=True)
        self.thread.start()

    def halt(self):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.source.close()


def _stream_ids(n_partitions: int) -> list[str]:
    """One stream id per partition (the default partitioner hashes the key with murmur2)."""
    ids: dict[int, str] = {}
    i = 0
    while len(ids) < n_partitions:
        sid = f"subject-{i}"
        ids.setdefault((murmur2(sid.encode()) & 0x7FFFFFFF) % n_partitions, sid)
        i += 1
    return [ids[p] for p in range(n_partitions)]


def _produce(prod, rec, streams, start, stop):
    """Send samples [start, stop) of every stream, each cue just before the chunk holding it."""
    first = start - start % CHUNK
    for s0 in range(first, stop, CHUNK):
        s1 = min(s0 + CHUNK, rec.n_samples)
        for sid in streams:
            for cue in rec.cues:
                if s0 <= cue.sample < s1:
                    prod.send_marker(sid, cue.sample, cue.label)
            prod.send_chunk(sid, rec.data[:, s0:s1], rec.sfreq, s0, s0 / rec.sfreq)
    prod.flush()


def _topics(broker, partitions):
    names = {k: unique(k) for k in ("raw", "markers", "dead")}
    broker.create_topics({names["raw"]: partitions, names["markers"]: partitions, names["dead"]: 1})
    return names


def _check_exactly_once(out, streams, expected):
    keys = [(d.stream_id, d.window_end) for _, d in out]
    assert len(keys) == len(set(keys)), "a cue was decided twice"
    assert set(keys) == {(s, e) for s in streams for e in expected}, "decisions are missing"
    for _, d in out:
        assert d.label == expected[d.window_end], f"{d.stream_id}@{d.window_end}: label differs"


def _unusual(events):
    """The engine's events other than re-read samples it dropped (those are expected after a restart)."""
    return [e for e in list(events) if e.kind != "duplicate"]


def _done(out, lock, n):
    with lock:
        return len(out) >= n


def test_two_engines_split_partitions_and_hand_over(stream_setup, kafka_broker):
    rec, expected = stream_setup.recording, stream_setup.expected
    names = _topics(kafka_broker, 4)
    streams = _stream_ids(4)
    group, out, lock = unique("g"), [], threading.Lock()
    a = _Worker("a", kafka_broker, names, group, stream_setup.pipeline, out, lock)
    b = _Worker("b", kafka_broker, names, group, stream_setup.pipeline, out, lock)
    try:
        wait_until(lambda: len(a.source.assignment()) == 2 and len(b.source.assignment()) == 2,
                   timeout=30, what="4 partitions split 2 + 2")
        assert not a.source.assignment() & b.source.assignment()
        prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"])
        half = rec.n_samples // 2
        _produce(prod, rec, streams, 0, half)
        prod.producer.send(names["raw"], key=streams[0].encode(), value=b"garbage")  # dead letter
        prod.flush()
        first = [e for e in expected if e <= half]
        wait_until(lambda: _done(out, lock, 4 * len(first)), timeout=60, what="first-half decisions")
        assert {name for name, _ in out} == {"a", "b"}, "both engines decide"
        a.halt()  # clean stop: commits, leaves the group; b takes over a's partitions
        _produce(prod, rec, streams, half, rec.n_samples)
        prod.close()
        wait_until(lambda: _done(out, lock, 4 * len(expected)), timeout=60, what="all decisions")
        wait_until(lambda: len(b.source.assignment()) == 4, timeout=10, what="b owns all partitions")
        _check_exactly_once(out, streams, expected)
        assert b.source.stats.dead_letters + a.source.stats.dead_letters == 1
    finally:
        for w in (a, b):
            if w.thread.is_alive():
                w.halt()


def test_engine_and_durable_broker_restart_lose_nothing(stream_setup, durable_kafka_broker):
    broker = durable_kafka_broker
    rec, expected = stream_setup.recording, stream_setup.expected
    names = _topics(broker, 2)
    streams = _stream_ids(2)
    group, out, lock = unique("g"), [], threading.Lock()
    prod = KafkaChunkProducer(broker.bootstrap, names["raw"], names["markers"], kafka_config=BATCHED)
    half = rec.n_samples // 2
    _produce(prod, rec, streams, 0, half)
    prod.close()
    w = _Worker("first", broker, names, group, stream_setup.pipeline, out, lock)
    first = [e for e in expected if e <= half]
    try:
        wait_until(lambda: _done(out, lock, 2 * len(first)), timeout=60, what="first-half decisions")
    finally:
        w.halt()
    broker.restart()  # S3-backed: topics, records and committed offsets survive
    prod = KafkaChunkProducer(broker.bootstrap, names["raw"], names["markers"], kafka_config=BATCHED)
    _produce(prod, rec, streams, half, rec.n_samples)
    prod.close()
    w = _Worker("second", broker, names, group, stream_setup.pipeline, out, lock)
    try:
        wait_until(lambda: _done(out, lock, 2 * len(expected)), timeout=60, what="all decisions")
        # The restarted engine resumed from the committed offsets (re-reading only the warm-up).
        assert w.source.stats.messages < 0.75 * 2 * (rec.n_samples / CHUNK)
    finally:
        w.halt()
    _check_exactly_once(out, streams, expected)
    assert {n for n, d in out if d.window_end > half + 1000} == {"second"}
    np.testing.assert_equal(sorted({d.stream_id for _, d in out}), sorted(streams))


def test_broker_kill_9_and_restart_lose_no_marker(stream_setup, durable_kafka_broker):
    """The engine runs on through a broker crash: every cue produced after the restart is decided.

    The marker consumer (no group, assigned by hand) and the data consumer (group, committed
    offsets) both reconnect to the restarted broker and resume where they were: the S3 storage
    kept the topics, so nothing is re-read from the start and nothing is skipped.
    """
    broker = durable_kafka_broker
    rec, expected = stream_setup.recording, stream_setup.expected
    names = _topics(broker, 2)
    streams = _stream_ids(2)
    group, out, lock = unique("g"), [], threading.Lock()
    w = _Worker("w", broker, names, group, stream_setup.pipeline, out, lock)
    try:
        wait_until(lambda: len(w.source.assignment()) == 2, timeout=30, what="partitions assigned")
        prod = KafkaChunkProducer(broker.bootstrap, names["raw"], names["markers"], kafka_config=BATCHED)
        half = rec.n_samples // 2
        _produce(prod, rec, streams, 0, half)
        prod.close()
        first = [e for e in expected if e <= half]
        wait_until(lambda: _done(out, lock, 2 * len(first)), timeout=60, what="first-half decisions")
        broker.kill()
        broker.start()  # same port, same S3 bucket
        prod = KafkaChunkProducer(broker.bootstrap, names["raw"], names["markers"], kafka_config=BATCHED)
        _produce(prod, rec, streams, half, rec.n_samples)
        prod.close()
        wait_until(lambda: _done(out, lock, 2 * len(expected)), timeout=90,
                   what=lambda: (f"all decisions ({len(out)} of {2 * len(expected)}; source: "
                                 f"{w.source.stats}, assignment {sorted(map(str, w.source.assignment()))}, "
                                 f"lag {w.source.lag()}, engine events {_unusual(w.engine.events)})"))
    finally:
        w.halt()
    late = [e for e in expected if e > half]
    assert late, "the second half holds cues"
    decided = {(d.stream_id, d.window_end) for _, d in out}
    assert {(s, e) for s in streams for e in late} <= decided, "a cue after the restart was lost"
    _check_exactly_once(out, streams, expected)
