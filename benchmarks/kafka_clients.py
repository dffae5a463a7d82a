"""Raw consume rate of kafka-python and confluent-kafka (librdkafka) on the same backlog, same run.

Used by ``bench_streaming``: the two clients read the same topic (own consumer groups, from the
start) and only count messages and touch their values -- the ceiling any source built on them has.
"""

from __future__ import annotations

import time


def kafka_python_rate(bootstrap: str, topic: str, total: int) -> float:
    """Messages per second kafka-python's ``poll`` returns (values touched)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"raw-kp-{time.time_ns()}",
                             auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=5,
                             max_poll_records=5000, session_timeout_ms=2000, heartbeat_interval_ms=300)
    n, size, t0 = 0, 0, None
    try:
        while n < total:
            got = consumer.poll(timeout_ms=100)
            if got and t0 is None:
                t0 = time.perf_counter()
            for records in got.values():
                n += len(records)
                size += sum(len(r.value) for r in records)
        return n / (time.perf_counter() - t0)
    finally:
        consumer.close()


def confluent_rate(bootstrap: str, topic: str, total: int) -> float | None:
    """Messages per second confluent-kafka's ``consume`` returns (values touched); None if absent."""
    try:
        from confluent_kafka import Consumer
    except ImportError:
        return None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-ck-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5, "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    n, size, t0 = 0, 0, None
    try:
        while n < total:
            msgs = consumer.consume(num_messages=5000, timeout=0.1)
            if msgs and t0 is None:
                t0 = time.perf_counter()
            for m in msgs:
                if m.error() is None:
                    n += 1
                    size += len(m.value())
        return n / (time.perf_counter() - t0)
    finally:
        consumer.close()
