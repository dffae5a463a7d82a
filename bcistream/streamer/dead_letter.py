"""The dead-letter topic: undecodable messages, unchanged, with the reason in the headers."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["DeadLetter"]

log = logging.getLogger(__name__)


class DeadLetter:
    """Forwards rejected records to ``topic`` with headers ``reason``, ``topic``, ``partition``, ``offset``.

    Parameters
    ----------
    producer : kafka.KafkaProducer
    topic : str
    """

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.sent = 0

    def send(self, record: Any, reason: str) -> None:
        """Send ``record`` (a kafka-python ConsumerRecord) with ``reason``."""
        log.warning("dead-letter %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
        headers = [("reason", reason.encode()), ("topic", str(record.topic).encode()),
                   ("partition", str(record.partition).encode()), ("offset", str(record.offset).encode())]
        self.producer.send(self.topic, key=record.key, value=record.value, headers=headers)
        self.sent += 1

    def flush(self) -> None:
        """Wait until every dead letter is acknowledged."""
        if self.sent:
            self.producer.flush()

    def close(self) -> None:
        """Flush and close the producer."""
        self.producer.flush()
        self.producer.close()


def dead_lettered_origins(bootstrap: str, kafka_config: dict[str, Any] | None, topic: str,
                          partitions: set, tail: int = 2000,
                          wait_s: float = 3.0) -> set[tuple[str, int, int]]:
    """``(topic, partition, offset)`` of records of ``partitions`` already in the dead-letter ``topic``.

    Read when partitions are assigned: the previous owner may have dead-lettered a record and then
    failed to commit past it (a rebalance took the partition first), so the new owner re-reads it.
    Only the last ``tail`` letters of each dead-letter partition are read, until the consumer has
    caught up with the high watermark its fetches report (tansu's end offsets can be stale) or
    ``wait_s`` runs out. Errors leave the set empty (the caller then dead-letters again: a
    duplicate letter, never a lost one).
    """
    import time

    from kafka import KafkaConsumer, TopicPartition

    from bcistream.streamer.kafka_config import consumer_config

    wanted = {(tp.topic, tp.partition) for tp in partitions}
    found: set[tuple[str, int, int]] = set()
    consumer = None
    try:
        consumer = KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=None))
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return found
        consumer.assign(tps)
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(int(begins.get(tp, 0)), int(ends.get(tp, 0)) - tail))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=50).values():
                for rec in records:
                    head = {k: v for k, v in rec.headers or ()}
                    try:
                        origin = (head["topic"].decode(), int(head["partition"]), int(head["offset"]))
                    except (KeyError, ValueError, UnicodeDecodeError):
                        continue
                    if origin[:2] in wanted:
                        found.add(origin)
            highs = [consumer.highwater(tp) for tp in tps]
            if all(h is not None and consumer.position(tp) >= h for tp, h in zip(tps, highs, strict=True)):
                break
    except Exception as exc:  # noqa: BLE001 - a missing topic or broker hiccup: letters may repeat
        log.warning("could not read the dead-letter topic %r: %s", topic, exc)
    finally:
        if consumer is not None:
            consumer.close(autocommit=False)
    return found
