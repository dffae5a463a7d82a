"""Decision records: frozen, with a stable JSON form carrying a schema version."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "Decision"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Decision:
    """One decision of the engine.

    Parameters
    ----------
    stream_id : str
    trigger : str
        ``"hop"`` (sliding window) or ``"cue"`` (cue-locked).
    window_end : int
        Exclusive end sample index of the decided window in the stream.
    timestamp : float or None
        Source-clock timestamp of the window's last sample.
    label : str
        Decided class name.
    probabilities : dict
        Class name -> probability.
    model_version : str
        Version of the model whose CSP filters and classifier made the decision.
    cue_label : str or None
        True class of the cue when known (cue trigger).
    latency_ms : float
        Arrival of the chunk that completed the window -> decision (monotonic clock).
    arrival : float
        ``time.monotonic()`` arrival time of that chunk.
    decided : float
        ``time.monotonic()`` when the decision was made.
    """

    stream_id: str
    trigger: str
    window_end: int
    timestamp: float | None
    label: str
    probabilities: dict[str, float]
    model_version: str
    cue_label: str | None = None
    latency_ms: float = 0.0
    arrival: float = 0.0
    decided: float = 0.0
    schema: int = field(default=SCHEMA_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (stable keys)."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON line: keys in field order, ``probabilities`` in the model's class order
        (the profile's), as ``schemas/decision.schema.json`` documents."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """Inverse of `to_dict`; refuses unknown schema versions."""
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"unsupported decision schema {data.get('schema')!r}")
        return cls(**data)
