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
