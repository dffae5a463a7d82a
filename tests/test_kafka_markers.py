"""`MarkerFeed`'s catch-up drain against a real broker: it never assumes the end of the marker topic.

While the engine catches up on a backlog, the chunks wait until the marker consumer has reached the
end offsets of the marker topic. When the broker does not answer the end-offsets request (it is
restarting), the drain used to treat "unknown" as "reached" and let the chunks pass. The spy is a
real `KafkaConsumer` whose ``end_offsets`` times out a given number of times first (no broker can be
made to refuse that one request alone).
"""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError

from bcistream.streamer.kafka_health import FetchWatch
from bcistream.streamer.kafka_markers import MarkerBook, MarkerFeed
from bcistream.streamer.kafka_sink import KafkaChunkProducer
from bcistream.streamer.kafka_stats import KafkaSourceStats
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow


class _SlowEnds(KafkaConsumer):
    """A real consumer whose first ``fail`` end-offsets requests time out."""

    def __init__(self, *args, fail: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail, self.asked = fail, 0

    def end_offsets(self, partitions, timeout_ms=None):
        self.asked += 1
        if self.asked <= self.fail:
            raise KafkaTimeoutError("end offsets: broker did not answer")
        return super().end_offsets(partitions, timeout_ms=timeout_ms)


def _feed(broker, topic, fail):
    consumer = _SlowEnds(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
                         enable_auto_commit=False, fetch_max_wait_ms=5, fail=fail)
    events, rejected = [], []
    feed = MarkerFeed(consumer, topic, MarkerBook(), KafkaSourceStats(), watch=FetchWatch(consumer),
                      note=events.extend, reject=lambda *a: rejected.append(a))
    return feed, events, rejected


def _send_markers(broker, topic, n):
    prod = KafkaChunkProducer(broker.bootstrap, unique("raw"), topic)
    try:
        for i in range(n):
            prod.send_marker(f"s{i % 3}", 100 * i, "left")
    finally:
        prod.close()


@pytest.mark.parametrize("fail", [0, 3])
def test_drain_waits_for_the_end_offsets_and_takes_every_marker(kafka_broker, fail):
    topic = unique("markers")
    kafka_broker.create_topics({topic: 2})
    _send_markers(kafka_broker, topic, 12)
    feed, events, rejected = _feed(kafka_broker, topic, fail)
    try:
        feed.poll(wait_s=10.0, drain=True)
        assert feed.consumer.asked == fail + 1, "the drain asks again until the broker answers"
        assert feed.stats.markers == 12, "a drain returned before the end of the marker topic"
        assert not [e for e in events if e.kind == "markers_behind"]
        assert not rejected
    finally:
        feed.close()


def test_drain_that_never_learns_the_end_says_markers_behind(kafka_broker, caplog):
    topic = unique("markers")
    kafka_broker.create_topics({topic: 1})
    _send_markers(kafka_broker, topic, 2)
    feed, events, _ = _feed(kafka_broker, topic, fail=10**6)
    try:
        with caplog.at_level(logging.DEBUG, logger="bcistream"):
            feed.poll(wait_s=0.5, drain=True)
        behind = [e for e in events if e.kind == "markers_behind"]
        assert len(behind) == 1, events
        assert "end offsets were unavailable" in behind[0].detail
        assert feed.consumer.asked >= 2
        # An event is logged once, by the run's event monitor: the feed itself says nothing more.
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert not [m for m in said if "behind" in m], said
    finally:
        feed.close()


def test_a_stream_never_runs_past_a_cue_before_the_marker_consumer_has_it(kafka_broker):
    """Small polls add up: the data may arrive a few chunks per poll while the marker consumer is
    behind (after a broker restart its fetches stalled for seconds while the data went on, and the
    engine passed four cues' windows: test_broker_kill_9_and_restart_lose_no_marker). A stream may
    run only ``marker_slack_s`` past the point where the marker topic was known complete.

    The marker consumer here is real, but its own polls outside a drain return nothing (the
    stalled consumer of the broker restart; no broker can stall one consumer alone)."""
    import numpy as np

    from bcistream.streamer.kafka_source import KafkaSource

    names = {k: unique(k) for k in ("raw", "markers", "dead")}
    kafka_broker.create_topics({names["raw"]: 1, names["markers"]: 1, names["dead"]: 1})
    source = KafkaSource(kafka_broker.bootstrap, names["raw"], group=unique("g"),
                         markers_topic=names["markers"], dead_letter_topic=names["dead"],
                         kafka_config={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300})
    consumer = source._markers.consumer
    real_poll = consumer.poll
    consumer.poll = lambda timeout_ms=0, **kw: real_poll(timeout_ms, **kw) if timeout_ms else {}
    prod = KafkaChunkProducer(kafka_broker.bootstrap, names["raw"], names["markers"])
    sfreq, chunk, cues = 250.0, 50, list(range(300, 3000, 500))
    handed, markers = 0, []
    try:
        for s0 in range(0, 3000, chunk):
            for cue in cues:
                if s0 <= cue < s0 + chunk:
                    prod.send_marker("s1", cue, "left")
            prod.send_chunk("s1", np.zeros((2, chunk), np.float32), sfreq, s0, s0 / sfreq)
            prod.flush()
            got = 0
            for _ in range(400):
                batch = source.poll(0.05)
                markers += [(m.sample, handed) for m in batch.markers]
                got += sum(c.data.shape[1] for c in batch.chunks)
                handed += sum(c.data.shape[1] for c in batch.chunks)
                if handed >= s0 + chunk:
                    break
            assert handed >= s0 + chunk, f"chunk at {s0} did not arrive"
    finally:
        prod.close()
        source.close()
    assert sorted(m for m, _ in markers) == cues
    slack = source.marker_slack_s * sfreq + chunk
    late = [(cue, at) for cue, at in markers if at - cue > slack]
    assert not late, f"markers handed on after the stream ran past them by more than {slack} samples: {late}"


def test_drain_on_a_broker_whose_end_offsets_lag_takes_every_marker(durable_kafka_broker):
    """tansu's S3 storage answers ListOffsets with a stale end (1 after 10 acknowledged records on
    one partition) while its fetches carry the true high watermark: the drain goes by the later."""
    from kafka import TopicPartition

    broker = durable_kafka_broker
    topic = unique("markers")
    tp = TopicPartition(topic, 0)
    broker.create_topics({topic: 1})
    feed, events, _ = _feed(broker, topic, fail=0)
    try:
        feed.poll(wait_s=10.0, drain=True)  # assigned, at the (empty) end
        _send_markers(broker, topic, 10)
        first = {}
        for _ in range(50):  # one record taken by hand: the fetch behind it brought the high watermark
            first = feed.consumer.poll(timeout_ms=200, max_records=1)
            if first:
                break
        assert sum(len(r) for r in first.values()) == 1
        stale = feed.consumer.end_offsets([tp])[tp]
        assert stale < 10 <= feed.consumer.highwater(tp), "the broker's end offsets no longer lag"
        feed.poll(wait_s=10.0, drain=True)
        assert feed.stats.markers == 9, f"the drain stopped at the broker's end offset {stale}"
        assert not [e for e in events if e.kind == "markers_behind"]
    finally:
        feed.close()
