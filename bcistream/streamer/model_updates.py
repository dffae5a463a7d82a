"""The ``model-updates`` topic: the promoter announces a new champion, running engines check at once.

A message is a hint, never the truth: the listener only wakes the `ModelWatcher`, which reads the
registry's alias itself. Old or repeated messages are therefore harmless (the listener reads the
topic from the beginning, which also sidesteps brokers whose "latest" offset is stale).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bcistream.streamer.kafka_config import consumer_config, producer_config

__all__ = ["ModelUpdateListener", "ModelUpdatePublisher", "update_message"]

log = logging.getLogger(__name__)

#: Default topic name.
TOPIC = "model-updates"


def update_message(name: str, version: str, previous: str | None = None) -> bytes:
    """The JSON payload announcing ``version`` of ``name`` as champion."""
    return json.dumps({"name": name, "version": str(version), "previous": previous,
                       "alias": "champion", "at": time.time()}).encode()


class ModelUpdatePublisher:
    """Publish promotions; pass an instance as ``on_promote`` to `promotion.promote`.

    Parameters
    ----------
    bootstrap : str
    topic : str
    kafka_config : dict, optional
    """

    def __init__(self, bootstrap: str, topic: str = TOPIC,
                 kafka_config: dict[str, Any] | None = None) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.producer = KafkaProducer(**producer_config(bootstrap, kafka_config))
        self.sent = 0

    def __call__(self, decision: Any) -> None:
        """Send one update for a `PromotionDecision` (blocks until the broker acknowledges)."""
        self.publish(decision.name, decision.challenger, decision.champion_before)

    def publish(self, name: str, version: str, previous: str | None = None) -> None:
        """Send ``name`` v``version`` is champion (keyed by model name)."""
        message = update_message(name, version, previous)
        self.producer.send(self.topic, key=name.encode(), value=message).get(10)
        self.sent += 1

    def close(self) -> None:
        """Flush and close the producer."""
        self.producer.close()


class ModelUpdateListener:
    """A thread reading the topic and calling ``on_update(payload)`` for each message about ``name``.

    Parameters
    ----------
    bootstrap : str
    name : str
        Registered model name to listen for (other models' messages are ignored).
    on_update : callable
        Called with the decoded payload dict (e.g. ``lambda _: watcher.poke()``).
    topic : str
    kafka_config : dict, optional
    """

    def __init__(self, bootstrap: str, name: str, on_update: Callable[[dict[str, Any]], None],
                 topic: str = TOPIC, kafka_config: dict[str, Any] | None = None) -> None:
        from kafka import KafkaConsumer

        self.name = name
        self.topic = topic
        self.on_update = on_update
        self.received = 0
        self.consumer = KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=None))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ModelUpdateListener:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bcistream-model-updates", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread and close the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        try:
            self.consumer.close()
        except Exception as exc:  # noqa: BLE001
            log.debug("closing the model-updates consumer: %s", exc)

    def _assign(self) -> bool:
        from kafka import TopicPartition

        parts = self.consumer.partitions_for_topic(self.topic)
        if not parts:
            return False
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        self.consumer.seek_to_beginning()
        return True

    def _run(self) -> None:
        assigned = False
        while not self._stop.is_set():
            try:
                if not assigned:
                    assigned = self._assign()
                    if not assigned:
                        self._stop.wait(0.5)
                        continue
                for records in self.consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        self._take(rec.value)
            except Exception as exc:  # noqa: BLE001  (the registry poll still works without the topic)
                log.warning("model-updates listener: %s: %s", type(exc).__name__, exc)
                self._stop.wait(1.0)

    def _take(self, value: bytes) -> None:
        try:
            payload = json.loads(value)
        except (ValueError, TypeError):
            return
        if not isinstance(payload, dict) or payload.get("name") != self.name:
            return
        self.received += 1
        self.on_update(payload)
