"""Kafka sinks: decisions as JSON keyed by stream id, and a producer of EEG chunks and markers."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bcistream.errors import BcistreamError
from bcistream.realtime.records import Decision
from bcistream.streamer.kafka_config import producer_config
from bcistream.streamer.wire import encode_chunk, encode_marker, new_session

__all__ = ["KafkaChunkProducer", "KafkaDecisionSink"]


#: Refusals that mean the broker has forgotten this (idempotent) producer: its id and sequence
#: numbers live on the broker, and one restarted without durable storage (the bundled broker by
#: default) loses them. kafka-python's producer cannot go on after that; a new one can.
_FORGOTTEN = ("UnknownProducerIdError", "OutOfOrderSequenceNumberError")

#: How long new producers are tried, from the first refusal without a clean flush since, before
#: the refusal is raised (a restarting broker refuses a new producer's id until it is ready).
_RENEW_S = 60.0
#: Pause before each new producer after the first.
_RENEW_PAUSE_S = 1.0

log = logging.getLogger(__name__)


class _Producer:
    def __init__(self, bootstrap: str, kafka_config: dict[str, Any] | None, **overrides: Any) -> None:
        self._config = producer_config(bootstrap, kafka_config, **overrides)
        self.producer = self._new_producer()
        self._futures: list = []
        self._messages: list[tuple[str, str, bytes, list | None]] = []
        self._refused_since: float | None = None  # first refusal not followed by a clean flush

    def _new_producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(**self._config)

    def _send(self, topic: str, key: str, value: bytes, headers: list | None = None) -> None:
        self._futures.append(self.producer.send(topic, key=key.encode(), value=value, headers=headers))
        self._messages.append((topic, key, value, headers))

    def flush(self) -> None:
        """Block until everything sent is acknowledged; raise if the broker refused any of it.

        A broker that has forgotten this producer (restarted without durable storage) refuses
        what was in flight; those messages are sent again, in their order, by a new producer (a
        warning says so), for up to ``_RENEW_S`` while the restarting broker refuses new ones too.
        The engine drops what it has seen twice (sequence numbers, marker keys).

        Raises
        ------
        BcistreamError
            The broker refused a message for another reason, or kept refusing new producers.
        """
        while True:
            self.producer.flush()
            futures, self._futures = self._futures, []
            messages, self._messages = self._messages, []
            failed = [(f.exception, m) for f, m in zip(futures, messages, strict=True) if f.failed()]
            if not failed:
                self._refused_since = None
                return
            exc = failed[0][0]
            forgotten = all(type(e).__name__ in _FORGOTTEN for e, _ in failed)
            now = time.monotonic()
            if self._refused_since is None:
                self._refused_since = now
                if forgotten:
                    log.warning("the Kafka broker has forgotten this producer (%s; restarted without "
                                "durable storage?): sending %d message(s) again with a new producer",
                                type(exc).__name__, len(failed))
            elif forgotten and now - self._refused_since < _RENEW_S:
                time.sleep(_RENEW_PAUSE_S)  # the restarting broker refused the last new one too
            if not forgotten or now - self._refused_since >= _RENEW_S:
                self._refused_since = None
                why = (f" — the broker has forgotten this producer (restarted without durable "
                       f"storage?) and refused new ones for {_RENEW_S:g} s" if forgotten else "")
                raise BcistreamError(f"Kafka refused {len(failed)} message(s): {exc}{why}")
            old, self.producer = self.producer, self._new_producer()
            try:
                old.close(timeout=1)
            except Exception as close_exc:  # noqa: BLE001 - the old one is dead anyway
                log.debug("closing the forgotten producer: %s", close_exc)
            for _, message in failed:
                self._send(*message)

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
