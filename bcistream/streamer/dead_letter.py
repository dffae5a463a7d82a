"""The dead-letter topic: undecodable messages, unchanged, with the reason in the headers.

`Rejections` is what a Kafka source sends through: it skips the records a partition's previous
owner already dead-lettered (`dead_lettered_origins`) and counts and reports every letter.
"""

from __future__ import annotations

import logging
from typing import Any

from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.streamer.kafka_stats import KafkaSourceStats

__all__ = ["DeadLetter", "Rejections", "dead_lettered_origins"]

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
        """Send ``record`` (a kafka-python ConsumerRecord) with ``reason``.

        Not logged here: `Rejections.send` makes it a ``dead_letter`` event, which the run's event
        monitor logs once (rate-limited) and counts.
        """
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
        cfg = consumer_config(bootstrap, kafka_config, group_id=None)
        # Read in the engine's poll: a broker gone since the assignment must not hold it for the
        # client's 30 s bootstrap wait.
        cfg["bootstrap_timeout_ms"] = min(int(cfg.get("bootstrap_timeout_ms", 30000)), int(wait_s * 1000))
        consumer = KafkaConsumer(**cfg)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return found
        consumer.assign(tps)
        ms = max(1, int(wait_s * 1000))
        begins = consumer.beginning_offsets(tps, timeout_ms=ms)
        ends = consumer.end_offsets(tps, timeout_ms=ms)
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


class Rejections:
    """Dead-letters the records a Kafka source refuses, once per record across owners of a partition.

    Parameters
    ----------
    dead : DeadLetter
        Where the letters go.
    bootstrap : str
    kafka_config : dict or None
        Client settings for reading the dead-letter topic back (`learn`).
    stats : KafkaSourceStats
        ``dead_letters`` and ``dead_letters_repeated`` are counted here.
    events : EventQueue
        Receives a ``dead_letter`` event per letter sent.
    """

    def __init__(self, dead: DeadLetter, bootstrap: str, kafka_config: dict[str, Any] | None,
                 stats: KafkaSourceStats, events: EventQueue) -> None:
        self.dead = dead
        self.stats = stats
        self.events = events
        self._bootstrap, self._kafka_config = bootstrap, kafka_config
        self._origins: set[tuple[str, int, int]] = set()

    def learn(self, partitions: set) -> None:
        """Read which records of newly assigned ``partitions`` are already in the dead-letter topic."""
        # Letters the previous owner already sent for these partitions are not sent twice.
        self._origins |= dead_lettered_origins(self._bootstrap, self._kafka_config, self.dead.topic,
                                               partitions)

    def send(self, rec: Any, reason: str, detail: str) -> None:
        """Dead-letter ``rec`` with ``detail`` (``reason``: its short label), unless already sent."""
        origin = (rec.topic, rec.partition, rec.offset)
        if origin in self._origins:
            self._origins.discard(origin)
            self.stats.dead_letters_repeated += 1
            log.info("%s[%s]@%s was dead-lettered by the partition's previous owner: not sent again",
                     *origin)
            return
        self.dead.send(rec, detail)
        self.stats.dead_letters += 1
        self.events.append(EngineEvent("dead_letter", None, 0, reason,
                                       f"{rec.topic}[{rec.partition}]@{rec.offset}: {detail}"))
