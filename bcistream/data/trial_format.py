"""Labelled trials recorded from live streams, and their stored form (one ``.npz`` per trial).

The recorder (``bcistream.realtime.recorder``) makes `RecordedTrial` objects, the trial writer
(``bcistream.streamer.trial_writer``) stores them with `encode_trial`, and training reads them back
with `decode_trial` (``bcistream.training.recorded``). Keeping the format here, below both, gives
the two sides one definition.

A stored trial is self-describing: raw samples, their source timestamps and a JSON metadata entry
(stream, cue, class, profile, model version and the engine's decision). Objects are written whole
(write-then-rename on a folder, one upload on GCS), so a stored trial is complete or absent.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bcistream.errors import DataError

__all__ = ["FORMAT_VERSION", "TRIALS_PREFIX", "RecordedTrial", "decode_trial", "encode_trial", "trial_key"]

#: Version of the stored form (``meta["format"]``).
FORMAT_VERSION = 1
#: Key folder of recorded sessions in a store.
TRIALS_PREFIX = "trials/"


@dataclass(frozen=True, eq=False)
class RecordedTrial:
    """One labelled trial of a live stream.

    Parameters
    ----------
    stream_id : str
    label : str
        Class name of the cue.
    cue_sample : int
        Cue onset as a sample index of the stream.
    start_sample : int
        Stream index of the first sample of ``data``.
    data : ndarray, shape (n_channels, preroll + window), float32
        Raw samples in volts, profile channel order; the window (cue + offset ...) is the last
        ``window`` samples, the ``preroll`` leading samples let a zero-state filter settle.
    preroll : int
        Samples of ``data`` before the decoded window.
    profile : dict
        ``Profile.to_dict()`` of the stream.
    cue_timestamp : float or None
        Cue onset on the source clock (when known).
    timestamps : ndarray or None
        Source timestamps of the samples of ``data``.
    model_version : str or None
        Model version running when the trial was decided.
    decision : dict or None
        The engine's cue decision for this window (label, probabilities, model_version,
        window_end), ``None`` when the engine made none.
    recorded_at : float
        Unix time the trial was complete (orders trials for time-ordered splits).
    """

    stream_id: str
    label: str
    cue_sample: int
    start_sample: int
    data: np.ndarray
    preroll: int
    profile: dict[str, Any]
    cue_timestamp: float | None = None
    timestamps: np.ndarray | None = None
    model_version: str | None = None
    decision: dict[str, Any] | None = None
    recorded_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def window_end(self) -> int:
        """Exclusive end sample of the decoded window (what cue decisions name)."""
        return self.start_sample + int(self.data.shape[1])

    @property
    def key(self) -> tuple[str, int, float | None]:
        """Identity for deduplication: stream, cue sample and cue timestamp (ms resolution)."""
        ts = None if self.cue_timestamp is None else round(float(self.cue_timestamp), 3)
        return (self.stream_id, int(self.cue_sample), ts)

    def meta(self) -> dict[str, Any]:
        """JSON-compatible metadata (everything but the arrays)."""
        return {
            "format": FORMAT_VERSION, "stream_id": self.stream_id, "label": self.label,
            "cue_sample": int(self.cue_sample), "start_sample": int(self.start_sample),
            "preroll": int(self.preroll), "n_samples": int(self.data.shape[1]),
            "profile": self.profile, "cue_timestamp": self.cue_timestamp,
            "model_version": self.model_version, "decision": self.decision,
            "recorded_at": float(self.recorded_at), "extra": self.extra,
        }


def encode_trial(trial: RecordedTrial) -> bytes:
    """The stored form of a trial: an uncompressed ``.npz`` with ``data``, ``timestamps``, ``meta``."""
    buf = io.BytesIO()
    ts = np.asarray([] if trial.timestamps is None else trial.timestamps, dtype=np.float64)
    np.savez(buf, data=np.asarray(trial.data, dtype=np.float32), timestamps=ts,
             meta=np.frombuffer(json.dumps(trial.meta()).encode(), dtype=np.uint8))
    return buf.getvalue()


def decode_trial(blob: bytes, source: str = "trial") -> RecordedTrial:
    """Inverse of `encode_trial`.

    Raises
    ------
    DataError
        Not a stored trial, or a format version this code does not read.
    """
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            data = np.asarray(npz["data"], dtype=np.float32)
            ts = np.asarray(npz["timestamps"], dtype=np.float64)
            meta = json.loads(bytes(npz["meta"]).decode())
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"{source}: not a recorded trial ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"{source}: recorded-trial format {meta.get('format')!r} is not supported")
    if data.ndim != 2 or data.shape[1] != meta["n_samples"]:
        raise DataError(f"{source}: data shape {data.shape} does not match its metadata")
    return RecordedTrial(
        stream_id=str(meta["stream_id"]), label=str(meta["label"]), cue_sample=int(meta["cue_sample"]),
        start_sample=int(meta["start_sample"]), data=data, preroll=int(meta["preroll"]),
        profile=dict(meta["profile"]), cue_timestamp=meta.get("cue_timestamp"),
        timestamps=ts if ts.size else None, model_version=meta.get("model_version"),
        decision=meta.get("decision"), recorded_at=float(meta.get("recorded_at", 0.0)),
        extra=dict(meta.get("extra") or {}),
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def trial_key(session: str, trial: RecordedTrial) -> str:
    """Store key of a trial: ``trials/<session>/<stream>/<cue sample>.npz`` (stream id made path-safe)."""
    stream = _UNSAFE.sub("_", trial.stream_id).strip("._") or "stream"
    return f"{TRIALS_PREFIX}{session}/{stream}/{int(trial.cue_sample):012d}.npz"
