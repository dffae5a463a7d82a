"""The Kafka wire format of EEG chunks and cue markers (pure functions, no I/O).

A chunk message is a fixed little-endian header followed by the samples, channel-major
(``n_channels`` rows of ``n_samples`` values), so decoding is a zero-copy ``np.frombuffer`` view:

======  ========  =====================================================
offset  type      field
======  ========  =====================================================
0       4 bytes   magic ``b"BCIS"``
4       uint8     format version (2; version 1 messages, without the session, still decode)
5       uint8     dtype code: 1 = float32, 2 = float64 (little-endian)
6       uint16    number of channels
8       uint32    number of samples
12      float64   sampling rate in Hz
20      uint64    sequence number of the first sample (samples since stream start)
28      float64   source timestamp of the first sample (seconds, producer clock)
36      uint64    session id of the producer run (version 2; 0 = none): a new id is a restart
44      ...       samples: n_channels x n_samples values of the dtype
======  ========  =====================================================

Version 1 is the same without the session (samples at offset 36). The message key is the stream
id (UTF-8). An optional ``units`` message header declares the samples' unit (``"microvolts"``,
``"uV"``, ``"V"``…; `bcistream.data.contract.volts_per_unit`). Cue markers are JSON objects
``{"stream_id": str, "sample": int, "label": str | int | float | null, "session": str}``
(``session`` optional: the hex session id of the chunks ``sample`` counts in) keyed by the
stream id; the label is the value as sent (class name, event code or alias), mapped by the engine.
"""

from __future__ import annotations

import json
import math
import secrets
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "HEADER",
    "HEADER_V1",
    "MAGIC",
    "WIRE_VERSION",
    "WireChunk",
    "WireError",
    "decode_chunk",
    "decode_marker",
    "decode_marker_full",
    "encode_chunk",
    "encode_marker",
    "new_session",
    "session_text",
]

MAGIC = b"BCIS"
WIRE_VERSION = 2
HEADER = struct.Struct("<4sBBHIdQdQ")
#: The version-1 header (no session id); still decoded.
HEADER_V1 = struct.Struct("<4sBBHIdQd")
_DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4"), 2: np.dtype("<f8")}
_CODES = {dt: code for code, dt in _DTYPES.items()}
#: Sanity bounds: a message larger than this is refused rather than allocated.
MAX_CHANNELS = 4096
MAX_SAMPLES = 1 << 20


class WireError(ValueError):
    """A message that cannot be decoded; ``reason`` is a short machine-friendly explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class WireChunk:
    """A decoded chunk message.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Read-only view on the message bytes (no copy).
    sfreq : float
    seq : int
        Sequence number of the first sample.
    timestamp : float
        Source timestamp of the first sample.
    session : str or None
        Session id of the producer run (16 hex digits), ``None`` in version-1 messages.
    """

    data: np.ndarray
    sfreq: float
    seq: int
    timestamp: float
    session: str | None = None

    def timestamps(self) -> np.ndarray:
        """Per-sample source timestamps derived from the first one and the rate."""
        return self.timestamp + np.arange(self.data.shape[1]) / self.sfreq


def new_session() -> int:
    """A fresh random session id for a producer run (never 0; replays never reuse one)."""
    return secrets.randbits(64) or 1


def session_text(session: int) -> str | None:
    """The text form of a wire session id (``None`` for 0)."""
    return f"{session:016x}" if session else None


def encode_chunk(data: np.ndarray, sfreq: float, seq: int, timestamp: float,
                 dtype: str | np.dtype = "<f4", session: int = 0) -> bytes:
    """Encode samples (n_channels, n_samples) as one chunk message.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    sfreq : float
        Sampling rate in Hz.
    seq : int
        Sequence number of the first sample (>= 0).
    timestamp : float
        Source timestamp of the first sample in seconds.
    dtype : str or dtype
        ``"<f4"`` (default) or ``"<f8"``.
    session : int
        Session id of the producer run (`new_session`; 0 = none).

    Returns
    -------
    bytes
    """
    dt = np.dtype(dtype).newbyteorder("<")
    if dt not in _CODES:
        raise ValueError(f"unsupported dtype {dtype!r}: use float32 or float64")
    arr = np.asarray(data)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"data must have shape (n_channels, n_samples), got {arr.shape}")
    if arr.shape[0] > MAX_CHANNELS or arr.shape[1] > MAX_SAMPLES:
        raise ValueError(f"chunk too large: {arr.shape}")
    if seq < 0:
        raise ValueError(f"seq must be >= 0, got {seq}")
    if not 0 <= int(session) < 1 << 64:
        raise ValueError(f"session must be a 64-bit unsigned integer, got {session}")
    head = HEADER.pack(MAGIC, WIRE_VERSION, _CODES[dt], arr.shape[0], arr.shape[1], float(sfreq),
                       int(seq), float(timestamp), int(session))
    return head + np.ascontiguousarray(arr, dtype=dt).tobytes()


def decode_chunk(value: bytes | bytearray | memoryview | None) -> WireChunk:
    """Decode one chunk message without copying the samples.

    Raises
    ------
    WireError
        With a reason for every malformed message (short, wrong magic, unknown version or dtype,
        bad shape, rate or timestamp, payload length mismatch).
    """
    if value is None:
        raise WireError("empty message (tombstone)")
    n = len(value)
    if n < HEADER_V1.size:
        raise WireError(f"message too short for a header: {n} bytes (a version-{WIRE_VERSION} header is "
                        f"{HEADER.size} bytes, version 1's {HEADER_V1.size})")
    magic, version = bytes(value[:4]), value[4]
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r} (expected {MAGIC!r})")
    if version == 1:
        head, (_, _, code, n_ch, n_s, sfreq, seq, ts), session = HEADER_V1, HEADER_V1.unpack_from(value, 0), 0
    elif version == WIRE_VERSION:
        if n < HEADER.size:
            raise WireError(f"message too short for the header: {n} < {HEADER.size} bytes")
        head = HEADER
        _, _, code, n_ch, n_s, sfreq, seq, ts, session = HEADER.unpack_from(value, 0)
    else:
        raise WireError(f"unsupported wire version {version} (this reader knows 1 and {WIRE_VERSION})")
    dt = _DTYPES.get(code)
    if dt is None:
        raise WireError(f"unknown dtype code {code}")
    if not 1 <= n_ch <= MAX_CHANNELS or not 1 <= n_s <= MAX_SAMPLES:
        raise WireError(f"bad shape: {n_ch} channels x {n_s} samples")
    if not (math.isfinite(sfreq) and sfreq > 0):
        raise WireError(f"bad sampling rate {sfreq!r}")
    if not math.isfinite(ts):
        raise WireError(f"bad timestamp {ts!r}")
    expected = head.size + n_ch * n_s * dt.itemsize
    if n != expected:
        raise WireError(f"payload length {n - head.size} != {n_ch}x{n_s}x{dt.itemsize} bytes")
    data = np.frombuffer(value, dtype=dt, count=n_ch * n_s, offset=head.size).reshape(n_ch, n_s)
    return WireChunk(data=data, sfreq=float(sfreq), seq=int(seq), timestamp=float(ts),
                     session=session_text(session))


def encode_marker(stream_id: str, sample: int, label: str | int | float | None,
                  session: int = 0) -> bytes:
    """Encode a cue marker as JSON bytes (``session``: the chunks' session id, 0 = none)."""
    obj: dict[str, Any] = {"stream_id": stream_id, "sample": int(sample), "label": label}
    if session:
        obj["session"] = session_text(session)
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_marker_full(value: bytes | None, key: bytes | None = None
                       ) -> tuple[str, int, str | int | float | None, str | None]:
    """`decode_marker` plus the marker's session id (``None`` when it names none)."""
    sid, sample, label = decode_marker(value, key)
    session = json.loads(value).get("session")
    if session is not None and not (isinstance(session, str) and 0 < len(session) <= 64):
        raise WireError(f"marker session must be a short string, got {session!r}")
    return sid, sample, label, session


def decode_marker(value: bytes | None, key: bytes | None = None
                  ) -> tuple[str, int, str | int | float | None]:
    """Decode a cue marker -> (stream_id, sample, label); `WireError` with a reason when malformed.

    The stream id comes from the JSON body, or from the message key when the body has none. The
    label is passed on as sent (a class name, an event code like ``770`` or ``"770"``, an alias):
    the engine maps it through the model profile (`bcistream.data.contract.MarkerMap`).
    """
    if value is None:
        raise WireError("empty marker message")
    try:
        obj: Any = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"marker is not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(obj, dict):
        raise WireError("marker must be a JSON object")
    sid = obj.get("stream_id")
    if sid is None and key is not None:
        sid = key.decode("utf-8", "replace")
    if not isinstance(sid, str) or not sid:
        raise WireError("marker has no stream_id")
    sample = obj.get("sample")
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise WireError(f"marker sample must be an integer >= 0, got {sample!r}")
    label = obj.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, str | int | float)):
        raise WireError(f"marker label must be a string, a number or null, got {label!r}")
    return sid, sample, label
