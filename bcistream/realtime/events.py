"""Reports of the engine that are not decisions: gaps, refused chunks, per-stream errors, swaps."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["EngineEvent", "EventQueue"]


@dataclass(frozen=True)
class EngineEvent:
    """One report of the engine.

    Parameters
    ----------
    kind : str
        ``"gap"`` (missing samples detected; ``size`` samples), ``"refused"`` (a chunk was refused;
        ``reason`` says why, ``size`` its samples), ``"duplicate"`` (``size`` samples already seen were
        dropped), ``"cue_lost"`` (a cue-locked window cannot be decided; ``reason``), ``"error"``
        (an unexpected error in one stream; the stream was reset), ``"swap"`` (model swapped;
        ``detail`` names old and new versions), ``"classifier"`` (the classifier failed a batch),
        ``"skipped"`` (a due window had no usable features, e.g. a flat signal).
    stream_id : str or None
        The stream concerned (``None`` for engine-wide events).
    size : int
        Number of samples concerned.
    reason : str
        Short machine-friendly reason (e.g. ``"channels"``, ``"dtype"``, ``"non-finite"``).
    detail : str
        One human-readable line.
    """

    kind: str
    stream_id: str | None = None
    size: int = 0
    reason: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict."""
        return asdict(self)


class EventQueue(deque):
    """A bounded queue of `EngineEvent` (oldest dropped first); `drain` empties it."""

    def __init__(self, maxlen: int = 10000) -> None:
        super().__init__(maxlen=maxlen)

    def drain(self) -> list[EngineEvent]:
        """Return and remove every queued event, oldest first."""
        out = []
        while self:
            out.append(self.popleft())
        return out
