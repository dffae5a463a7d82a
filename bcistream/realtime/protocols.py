"""The seams of the engine: what a source yields, what a sink takes, what a classifier does.

Adapters (LSL, Kafka, HTTP) implement these in `bcistream.streamer` / `bcistream.serving`; the
engine only knows the protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bcistream.realtime.records import Decision

__all__ = ["Batch", "Chunk", "Classifier", "Marker", "Sink", "Source", "UnknownVersionError"]


@dataclass(frozen=True, eq=False)
class Chunk:
    """New samples of one stream.

    Parameters
    ----------
    stream_id : str
    data : ndarray, shape (n_channels, n_samples)
        Samples in volts (float32 or float64), channels in the model profile's order.
    timestamps : ndarray, shape (n_samples,) or None
        Source-clock timestamps of each sample (LSL clock-corrected, or the producer's clock).
    seq : int or None
        Sequence number of the first sample (samples since the stream started); ``None`` when
        the transport has none (then timestamps are used to detect gaps).
    arrival : float
        ``time.monotonic()`` when the adapter received the chunk (latency is measured from it).
    session : str or None
        Id of the source's session (a producer run); a new id opens a new segment of the stream.
    units_declared : bool
        The adapter converted the samples from a declared unit (source metadata or the profile's
        ``units``); otherwise the first second of the stream is checked for plausibility as volts.
    """

    stream_id: str
    data: np.ndarray
    timestamps: np.ndarray | None = None
    seq: int | None = None
    arrival: float = 0.0
    session: str | None = None
    units_declared: bool = False


@dataclass(frozen=True)
class Marker:
    """A cue marker of one stream.

    Parameters
    ----------
    stream_id : str
    label : str, int, float, bytes or None
        The marker value as the source sent it: a class name, an event code (``769``, ``"769"``),
        or an alias of the profile (``"T1"``). The engine maps it through the model profile's
        `bcistream.data.contract.MarkerMap`; ``None`` is a cue of unknown class.
    sample : int or None
        Cue onset as the transport's sequence number of the stream (Kafka, replay).
    timestamp : float or None
        Cue onset on the source clock (LSL); used when ``sample`` is ``None``.
    session : str or None
        Source session ``sample`` counts in (``None``: the stream's current one).
    """

    stream_id: str
    label: object
    sample: int | None = None
    timestamp: float | None = None
    session: str | None = None


@dataclass
class Batch:
    """What one non-blocking poll of a source returns."""

    chunks: list[Chunk] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    """A non-blocking source of chunks and markers."""

    def poll(self, timeout: float = 0.0) -> Batch:
        """Return what arrived; wait at most ``timeout`` seconds when nothing has."""
        ...

    def resume_point(self) -> Any:
        """An opaque position up to which everything polled so far can be committed."""
        ...

    def commit(self, point: Any) -> None:
        """Acknowledge data up to ``point`` (its decisions are published)."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Takes decisions (and may buffer them until ``flush``)."""

    def write(self, decisions: Sequence[Decision]) -> None:
        """Accept decisions."""
        ...

    def flush(self) -> None:
        """Make every written decision durable/visible."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


class UnknownVersionError(Exception):
    """A classifier does not hold the model version the features were computed with.

    ``current`` names the version it does hold (e.g. the new champion), so the engine can swap to
    it and retry instead of mixing versions.
    """

    def __init__(self, requested: str, current: str | None = None) -> None:
        super().__init__(f"classifier does not hold model version {requested!r} (has {current!r})")
        self.requested = requested
        self.current = current


@runtime_checkable
class Classifier(Protocol):
    """The last step of decoding: feature vectors of the model version -> class probabilities.

    The contract is the model version and its feature length (``n_features`` of the decoder,
    `bcistream.decoders.StreamingDecoder`) only: which decoder made the features is not its concern.

    Every call names the model version the features were computed with; an implementation must
    refuse a version it does not hold rather than mix versions.
    """

    def classify(self, features: np.ndarray, version: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (class names, probabilities of shape (n, n_classes)) for ``features`` (n, k).

        Raises
        ------
        UnknownVersionError
            The classifier does not hold ``version``.
        """
        ...
