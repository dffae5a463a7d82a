"""`poll_in_slices` against a real broker: waits its whole timeout, returns records as they come.

kafka-python 3.0's ``poll`` can sleep its whole timeout when a fetch completes at the wrong moment
(see `bcistream.streamer.kafka_health`); slicing bounds that. The spy is a real `KafkaConsumer`
that records the timeouts it is given.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bcistream.streamer.kafka_health import poll_in_slices
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow


class _Spy(KafkaConsumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeouts: list[int] = []

    def poll(self, timeout_ms=0, *args, **kwargs):
        self.timeouts.append(timeout_ms)
        return super().poll(timeout_ms, *args, **kwargs)


def test_poll_in_slices_waits_in_fetch_waits_and_returns_records_as_they_come(kafka_broker):
    topic = unique("slices")
    kafka_broker.create_topics({topic: 1})
    # Assigned by hand (no group): nothing waits for a group join, which a loaded machine slows.
    consumer = _Spy(bootstrap_servers=kafka_broker.bootstrap, group_id=None,
                    auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=5)
    consumer.assign([TopicPartition(topic, 0)])
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    try:
        consumer.poll(timeout_ms=100)  # first fetch: offsets resolved, nothing to read yet
        consumer.timeouts.clear()
        t0 = time.monotonic()
        assert poll_in_slices(consumer, 0.3) == {}
        waited = time.monotonic() - t0
        assert waited >= 0.29, f"an empty poll returned after {waited:.3f} s instead of its timeout"
        assert len(consumer.timeouts) > 1 and max(consumer.timeouts) <= 5

        consumer.timeouts.clear()

        def send_later():
            # Send once the sliced poll is waiting (its second slice began), not after a fixed sleep.
            deadline = time.monotonic() + 10
            while len(consumer.timeouts) < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
            producer.send(topic, b"x").get(timeout=10)

        sender = threading.Thread(target=send_later)
        sender.start()
        t0 = time.monotonic()
        got = poll_in_slices(consumer, 10.0)
        sender.join()
        took = time.monotonic() - t0
        assert [r.value for recs in got.values() for r in recs] == [b"x"]
        assert took < 5.0, f"the record came {took:.1f} s after the poll began (timeout 10 s)"
        assert poll_in_slices(consumer, 0.0) == {}
    finally:
        producer.close()
        consumer.close()
