"""Kafka sinks: decisions as JSON keyed by stream id, and a producer of EEG chunks and markers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bcistream.errors import BcistreamError
from bcistream.realtime.records import Decision
from bcistream.streamer.kafka_config import producer_config
from bcistream.streamer.wire import encode_chunk, encode_marker, new_session

__all__ = ["KafkaChunkProducer", "KafkaDecisionSink"]


#: What a refusal means when the client's own name for it says nothing to a user.
_REFUSALS = {
    # The idempotent producer's id and sequence numbers live on the broker; a broker restarted
    # without durable storage (the bundled one by default) has forgotten them.
    "UnknownProducerIdError": "the broker has forgotten this producer (restarted without durable "
                              "storage?); the messages were not written — send them again",
    "OutOfOrderSequenceNumberError": "the broker lost messages this producer sent before (restarted "
                                     "without durable storage?); send them again",
}


def _why(name: str) -> str:
    return f" — {_REFUSALS[name]}" if name in _REFUSALS else ""


class _Producer:
    def __init__(self, bootstrap: str, kafka_config: dict[str, Any] | None, **overrides: Any) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(**producer_config(bootstrap, kafka_config, **overrides))
        self._futures: list = []

    def _send(self, topic: str, key: str, value: bytes, headers: list | None = None) -> None:
        self._futures.append(self.producer.send(topic, key=key.encode(), value=value, headers=headers))

    def flush(self) -> None:
        """Block until everything sent is acknowledged; raise if the broker refused any of it."""
        self.producer.flush()
        futures, self._futures = self._futures, []
        failed = [f.exception for f in futures if f.failed()]
        if failed:
            raise BcistreamError(f"Kafka refused {len(failed)} message(s): {failed[0]}"
                                 + _why(type(failed[0]).__name__))

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
    """Sends EEG chunks (wire format) and cue markers; what `replay --to kafka` and benchmarks use.

    Parameters
    ----------
    session : int, optional
        Session id stamped on every chunk and marker; default: a fresh random one per producer
        (`bcistream.streamer.wire.new_session`), so a restarted run is a new segment for the engine.
    units : str, optional
        Unit of the samples sent, as a ``units`` header on every chunk (``None``: samples are volts
        and no header is sent: the engine checks their plausibility).
    """

    def __init__(self, bootstrap: str, topic: str = "eeg.raw", markers_topic: str = "eeg.markers",
                 kafka_config: dict[str, Any] | None = None, *, session: int | None = None,
                 units: str | None = None, **overrides: Any) -> None:
        super().__init__(bootstrap, kafka_config, **overrides)
        self.topic = topic
        self.markers_topic = markers_topic
        self.session = new_session() if session is None else int(session)
        self._headers = None if units is None else [("units", str(units).encode())]

    def send_chunk(self, stream_id: str, data: np.ndarray, sfreq: float, seq: int,
                   timestamp: float) -> None:
        """Send samples (n_channels, n_samples) starting at sample ``seq``."""
        self._send(self.topic, stream_id, encode_chunk(data, sfreq, seq, timestamp, session=self.session),
                   self._headers)

    def send_marker(self, stream_id: str, sample: int, label: str | int | float | None) -> None:
        """Send a cue marker (the label as the marker program has it: class name or code).

        Returns once the broker has acknowledged the marker (and everything sent before it).
        Kafka orders messages within a partition only: a marker still lingering in the producer, or
        retried, can reach the log after chunks sent later, and an engine catching up on a backlog
        then passes the cue's window before it sees the marker (``cue_lost``, reason ``late``).
        Waiting here costs one round trip per cue and makes the log order the send order.

        Raises
        ------
        BcistreamError
            The broker refused the marker or an earlier message.
        """
        self._send(self.markers_topic, stream_id, encode_marker(stream_id, sample, label, self.session))
        self.flush()

    def pending(self) -> int:
        """Messages sent but not yet flushed."""
        return len(self._futures)
