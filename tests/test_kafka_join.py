"""A Kafka source joins its group even when its caller works between short polls.

kafka-python 3.0.12 throws away a JoinGroup/SyncGroup answer that arrives while no ``poll`` waits
for it, and sends a new JoinGroup. The bundled broker answers a join after ~1 s, so a caller that
polls for 5 ms and then works for 200 ms (an engine loop; the live-input tests' 20 ms polls between
20 ms sleeps on a loaded CI machine) rejoined for ever and never got a partition: no data, no error.
`KafkaSource` now waits inside one poll while it joins (``join_wait_s``). Real broker (tansu).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bcistream.streamer.kafka_sink import KafkaChunkProducer
from bcistream.streamer.kafka_source import KafkaSource
from tests.helpers import wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow

SF = 250.0
WORK_S = 0.2  #: what the caller spends between polls (the point of these tests, not a wait)


def _topics(broker, partitions: int) -> tuple[str, str]:
    raw, markers = unique("join"), unique("join.m")
    broker.create_topics({raw: partitions, markers: 1})
    return raw, markers


def _send(broker, raw, markers, streams) -> None:
    prod = KafkaChunkProducer(broker.bootstrap, raw, markers)
    try:
        data = np.zeros((22, 25), dtype=np.float32)
        for sid in streams:
            for k in range(8):
                prod.send_chunk(sid, data, SF, 25 * k, 10.0 + k * 25 / SF)
        prod.flush()
    finally:
        prod.close()


def _source(broker, raw, markers, group, **kw) -> KafkaSource:
    return KafkaSource(broker.bootstrap, raw, group=group, markers_topic=markers,
                       dead_letter_topic=unique("join.dead"), n_channels=22, sfreq=SF,
                       kafka_config={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}, **kw)


def _busy_caller(src: KafkaSource, seen: set, until: float, done, owned: list | None = None) -> None:
    """Poll for 5 ms, then work for 200 ms: the caller is outside ``poll`` 97 % of the time.

    ``owned[0]`` is set to the partitions the source owns after each poll (by the polling thread:
    the source is not thread-safe).
    """
    while time.monotonic() < until and not done.is_set():
        seen.update(ch.stream_id for ch in src.poll(0.005).chunks)
        if owned is not None:
            owned[0] = frozenset(src.assignment())
        done.wait(WORK_S)


def test_a_busy_caller_gets_its_partition(kafka_broker):
    raw, markers = _topics(kafka_broker, 1)
    _send(kafka_broker, raw, markers, ["s1"])
    src = _source(kafka_broker, raw, markers, unique("g"))
    seen: set = set()
    try:
        start = time.monotonic()
        deadline = start + 30.0
        while time.monotonic() < deadline and not seen:
            _busy_caller(src, seen, min(deadline, time.monotonic() + 0.5), threading.Event())
        took = time.monotonic() - start
    finally:
        src.close()
    # Without the join wait: no chunk in 30 s (every join answer came while the caller worked).
    assert seen == {"s1"}, f"no data after {took:.1f} s: the source never finished joining its group"


def test_busy_callers_of_one_group_share_the_partitions_after_a_rebalance(kafka_broker):
    """A second engine joins: both rejoin (a rebalance) and each ends up with one partition."""
    raw, markers = _topics(kafka_broker, 2)
    group = unique("g")
    _send(kafka_broker, raw, markers, [f"s{i}" for i in range(8)])  # both partitions get data
    first = _source(kafka_broker, raw, markers, group)
    second = None
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and len(first.assignment()) < 2:
            first.poll(1.0)  # an idle caller: joins with or without the join wait
        assert len(first.assignment()) == 2
        second = _source(kafka_broker, raw, markers, group)
        stop = threading.Event()
        mine: list[list] = [[frozenset()], [frozenset()]]
        threads = [threading.Thread(target=_busy_caller,
                                    args=(s, set(), time.monotonic() + 40.0, stop, out))
                   for s, out in zip((first, second), mine, strict=True)]
        for t in threads:
            t.start()

        def shared() -> bool:
            owned = [m[0] for m in mine]
            return all(len(o) == 1 for o in owned) and owned[0] != owned[1]

        try:
            wait_until(shared, timeout=40.0, what="each engine owning one partition")
        except TimeoutError:
            pass  # the assertion below says what each owned
        owned = [m[0] for m in mine]
        stop.set()
        for t in threads:
            t.join(timeout=10)
        # Without the join wait neither engine got a partition in 40 s.
        assert all(len(o) == 1 for o in owned) and owned[0] != owned[1], owned
        assert first.stats.rebalances >= 2 and second.stats.rebalances >= 1
    finally:
        first.close()
        if second is not None:
            second.close()

