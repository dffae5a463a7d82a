"""Kafka source and sinks against a real tansu broker on loopback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bcistream.realtime.records import Decision
from bcistream.streamer.kafka_sink import KafkaChunkProducer, KafkaDecisionSink
from bcistream.streamer.kafka_source import KafkaSource
from tests.helpers import wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow

FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


def _topics(broker, partitions=2):
    names = {k: unique(k) for k in ("raw", "markers", "dead", "decisions")}
    broker.create_topics({names["raw"]: partitions, names["markers"]: partitions, names["dead"]: 1,
                          names["decisions"]: 1})
    return names


def _source(broker, names, group, **kw):
    return KafkaSource(broker.bootstrap, names["raw"], group=group, markers_topic=names["markers"],
                       dead_letter_topic=names["dead"], kafka_config=FAST, **kw)


def _poll_into(source, chunks, markers):
    batch = source.poll(0.05)
    chunks.extend(batch.chunks)
    markers.extend(batch.markers)
    return sum(c.data.shape[1] for c in chunks)


def _drain(source, samples, timeout=30.0):
    chunks, markers = [], []
    wait_until(lambda: _poll_into(source, chunks, markers) >= samples, timeout=timeout,
               what=f"{samples} samples")
    return chunks, markers


def _samples(chunks):
    return [c.seq + i for c in chunks for i in range(c.data.shape[1])]


def _read_all(broker, topic, n, timeout=30.0):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             fetch_max_wait_ms=5, consumer_timeout_ms=200)
    got = []

    def check():
        for records in consumer.poll(timeout_ms=100).values():
            got.extend(records)
        return len(got) >= n

    try:
        wait_until(check, timeout=timeout, what=f"{n} records on {topic}")
    finally:
        consumer.close()
    return got


def test_chunks_markers_gaps_and_dead_letters(kafka_broker):
    names = _topics(kafka_broker)
    prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"])
    rng = np.random.default_rng(0)
    sent = [rng.standard_normal((22, 25)) for _ in range(4)]
    prod.send_marker("s1", 30, "left")
    prod.send_chunk("s1", sent[0], 250.0, 0, 10.0)
    prod.send_chunk("s1", sent[1], 250.0, 25, 10.1)
    prod.send_chunk("s1", sent[2], 250.0, 75, 10.3)   # 25 samples missing
    prod.send_chunk("s1", sent[1], 250.0, 25, 10.1)   # duplicate
    prod.send_chunk("s1", np.ones((8, 25)), 250.0, 100, 10.4)  # wrong channel count
    prod.send_chunk("s1", sent[3], 500.0, 100, 10.4)  # wrong rate
    prod.producer.send(names["raw"], key=b"s1", value=b"\x00garbage")
    prod.producer.send(names["raw"], key=None, value=b"no key")
    prod.producer.send(names["markers"], key=b"s1", value=b"{not json")
    prod.flush()
    src = _source(kafka_broker, names, unique("g"), n_channels=22, sfreq=250.0)
    try:
        chunks, markers = [], []
        wait_until(lambda: _poll_into(src, chunks, markers) >= 100 and src.stats.dead_letters >= 5,
                   timeout=30, what="chunks and dead letters")
        # contiguous chunks polled together are joined; the gap and the duplicate stay apart
        runs = [(c.seq, c.data.shape[1]) for c in chunks]
        assert sum(n for _, n in runs) == 100 and runs[-2:] == [(75, 25), (25, 25)]
        data = np.concatenate([c.data for c in chunks[:-2]], axis=1)
        np.testing.assert_array_equal(data, np.concatenate(sent[:2], axis=1).astype(np.float32))
        assert chunks[0].data.dtype == np.float32 and chunks[0].stream_id == "s1"
        np.testing.assert_allclose(np.concatenate([c.timestamps for c in chunks[:-2]])[24:27],
                                   [10.096, 10.1, 10.104])
        assert [(m.stream_id, m.sample, m.label) for m in markers] == [("s1", 30, "left")]
        assert src.stats.gaps == 1 and src.stats.gap_samples == 25 and src.stats.duplicates == 1
        src.commit(src.resume_point())
    finally:
        src.close()
    dead = _read_all(kafka_broker, names["dead"], 5)
    reasons = sorted(dict(r.headers)["reason"].decode() for r in dead)
    assert any("has 8 channels, the model expects 22" in r for r in reasons)
    assert any("500 Hz" in r for r in reasons)
    assert any("too short" in r or "bad magic" in r for r in reasons)
    assert any("no key" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    garbage = [r for r in dead if r.value == b"\x00garbage"][0]
    assert dict(garbage.headers)["topic"].decode() == names["raw"]


def test_decision_sink_and_restart_resumes_from_commit(kafka_broker):
    names = _topics(kafka_broker, partitions=1)
    group = unique("g")
    prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"])
    for i in range(10):
        prod.send_chunk("s", np.full((3, 25), i, dtype=np.float32), 250.0, 25 * i, float(i))
    prod.flush()
    src = _source(kafka_broker, names, group, warmup_messages=4)
    try:
        chunks, _ = _drain(src, 250)
        assert _samples(chunks) == list(range(250))
        src.commit(src.resume_point())
    finally:
        src.close()
    for i in range(10, 13):
        prod.send_chunk("s", np.full((3, 25), i, dtype=np.float32), 250.0, 25 * i, float(i))
    prod.flush()
    src = _source(kafka_broker, names, group, warmup_messages=4)
    try:
        chunks, _ = _drain(src, 175)
        # 4 messages before the commit are re-read to rebuild state, then the new ones.
        assert _samples(chunks) == list(range(150, 325))
        mk = lambda end: Decision("s", "cue", end, None, "left", {"left": 1.0}, "1")  # noqa: E731
        assert src.replayed(mk(250)) and not src.replayed(mk(251))
    finally:
        src.close()
    sink = KafkaDecisionSink(kafka_broker.bootstrap, names["decisions"])
    d = Decision("s", "hop", 750, 3.0, "left", {"left": 0.7, "right": 0.3}, "2", latency_ms=1.0)
    sink.write([d])
    sink.flush()
    sink.close()
    (rec,) = _read_all(kafka_broker, names["decisions"], 1)
    assert rec.key == b"s" and Decision.from_dict(json.loads(rec.value)) == d


def test_a_letter_the_previous_owner_sent_is_not_sent_again(kafka_broker):
    """Owner A dead-letters a record, then loses the partition before committing past it (a
    rebalance took it): owner B re-reads the record and finds it in the dead-letter topic."""
    names = _topics(kafka_broker, partitions=1)
    group = unique("g")
    prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"])
    prod.send_chunk("s1", np.zeros((22, 25), np.float32), 250.0, 0, 0.0)
    prod.producer.send(names["raw"], key=b"s1", value=b"\x00garbage")
    prod.send_chunk("s1", np.zeros((22, 25), np.float32), 250.0, 25, 0.1)
    prod.close()
    a = _source(kafka_broker, names, group)
    try:
        _drain(a, 50)
        wait_until(lambda: a.poll(0.05) is not None and a.stats.dead_letters == 1, what="A's letter")
        a._dead.flush()  # sent and acknowledged, but no commit: what a failed commit leaves behind
    finally:
        a.close()
    assert len(_read_all(kafka_broker, names["dead"], 1)) == 1
    b = _source(kafka_broker, names, group)
    try:
        chunks, _ = _drain(b, 50)  # B re-reads everything, the garbage too
        wait_until(lambda: b.poll(0.05) is not None and b.stats.dead_letters_repeated == 1,
                   what="the repeated record recognised")
        b.commit(b.resume_point())
        assert b.stats.dead_letters == 0
    finally:
        b.close()
    dead = _read_all(kafka_broker, names["dead"], 1)
    assert len(dead) == 1, "the record was dead-lettered twice"


def test_a_marker_is_in_the_log_before_send_marker_returns(kafka_broker):
    """Kafka orders messages within a partition only: a marker that lingered in the producer reached
    the log after chunks sent later, and an engine catching up passed the cue's window first
    (test_broker_kill_9_and_restart_lose_no_marker lost cues that way). A 10 s linger makes the
    wait visible: the marker's end offset has moved when ``send_marker`` returns."""
    from kafka import KafkaConsumer, TopicPartition

    names = _topics(kafka_broker, partitions=1)
    prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"],
                              kafka_config={"linger_ms": 10_000, "batch_size": 1 << 20})
    probe = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    marker_tp, raw_tp = TopicPartition(names["markers"], 0), TopicPartition(names["raw"], 0)
    try:
        prod.send_chunk("s1", np.zeros((2, 25), np.float32), 250.0, 0, 0.0)
        prod.send_marker("s1", 10, "left")
        ends = probe.end_offsets([marker_tp, raw_tp])
        assert ends[marker_tp] == 1, "the marker is still in the producer's buffer"
        assert ends[raw_tp] == 1, "a chunk sent before the marker is in the log before it too"
        assert prod.pending() == 0
    finally:
        probe.close()
        prod.close()
