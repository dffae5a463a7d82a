"""Kafka sinks: decisions as JSON keyed by stream id, and a producer of EEG chunks and markers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bcistream.errors import BcistreamError
from bcistream.realtime.records import Decision
from bcistream.streamer.kafka_config import producer_config
from bcistream.streamer.wire import encode_chunk, encode_marker

__all__ = ["KafkaChunkProducer", "KafkaDecisionSink"]


class _Producer:
    def __init__(self, bootstrap: str, kafka_config: dict[str, Any] | None, **overrides: Any) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(**producer_config(bootstrap, kafka_config, **overrides))
        self._futures: list = []

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self._futures.append(self.producer.send(topic, key=key.encode(), value=value))

    def flush(self) -> None:
        """Block until everything sent is acknowledged; raise if the broker refused any of it."""
        self.producer.flush()
        futures, self._futures = self._futures, []
        failed = [f.exception for f in futures if f.failed()]
        if failed:
            raise BcistreamError(f"Kafka refused {len(failed)} message(s): {failed[0]}")

    def close(self) -> None:
        """Flush and close."""
        try:
            self.flush()
        finally:
            self.producer.close()


class KafkaDecisionSink(_Producer):
    """Decisions to a topic (default ``eeg.decisions``): `Decision.to_json`, key = stream id."""

    def __init__(self, bootstrap: str, topic: str = "eeg.decisions",
                 kafka_config: dict[str, Any] | None = None) -> None:
        super().__init__(bootstrap, kafka_config)
        self.topic = topic

    def write(self, decisions: Sequence[Decision]) -> None:
        """Send decisions (asynchronously; `flush` waits for them)."""
        for d in decisions:
            self._send(self.topic, d.stream_id, d.to_json().encode())


class KafkaChunkProducer(_Producer):
    """Sends EEG chunks (wire format) and cue markers; what `replay --to kafka` and benchmarks use."""

    def __init__(self, bootstrap: str, topic: str = "eeg.raw", markers_topic: str = "eeg.markers",
                 kafka_config: dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(bootstrap, kafka_config, **overrides)
        self.topic = topic
        self.markers_topic = markers_topic

    def send_chunk(self, stream_id: str, data: np.ndarray, sfreq: float, seq: int,
                   timestamp: float) -> None:
        """Send samples (n_channels, n_samples) starting at sample ``seq``."""
        self._send(self.topic, stream_id, encode_chunk(data, sfreq, seq, timestamp))

    def send_marker(self, stream_id: str, sample: int, label: str | None) -> None:
        """Send a cue marker."""
        self._send(self.markers_topic, stream_id, encode_marker(stream_id, sample, label))

    def pending(self) -> int:
        """Messages sent but not yet flushed."""
        return len(self._futures)
