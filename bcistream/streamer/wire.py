"""The Kafka wire format of EEG chunks and cue markers (pure functions, no I/O).

A chunk message is a fixed little-endian header followed by the samples, channel-major
(``n_channels`` rows of ``n_samples`` values), so decoding is a zero-copy ``np.frombuffer`` view:

======  ========  =====================================================
offset  type      field
======  ========  =====================================================
0       4 bytes   magic ``b"BCIS"``
4       uint8     format version (1)
5       uint8     dtype code: 1 = float32, 2 = float64 (little-endian)
6       uint16    number of channels
8       uint32    number of samples
12      float64   sampling rate in Hz
20      uint64    sequence number of the first sample (samples since stream start)
28      float64   source timestamp of the first sample (seconds, producer clock)
36      ...       samples: n_channels x n_samples values of the dtype
======  ========  =====================================================

The message key is the stream id (UTF-8). Cue markers are JSON objects
``{"stream_id": str, "sample": int, "label": str | null}`` keyed by the stream id.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "HEADER",
    "MAGIC",
    "WIRE_VERSION",
    "WireChunk",
    "WireError",
    "decode_chunk",
    "decode_marker",
    "encode_chunk",
    "encode_marker",
]

MAGIC = b"BCIS"
WIRE_VERSION = 1
HEADER = struct.Struct("<4sBBHIdQd")
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
    """

    data: np.ndarray
    sfreq: float
    seq: int
    timestamp: float

    def timestamps(self) -> np.ndarray:
        """Per-sample source timestamps derived from the first one and the rate."""
        return self.timestamp + np.arange(self.data.shape[1]) / self.sfreq


def encode_chunk(data: np.ndarray, sfreq: float, seq: int, timestamp: float,
                 dtype: str | np.dtype = "<f4") -> bytes:
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
    head = HEADER.pack(MAGIC, WIRE_VERSION, _CODES[dt], arr.shape[0], arr.shape[1], float(sfreq),
                       int(seq), float(timestamp))
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
    if n < HEADER.size:
        raise WireError(f"message too short for the header: {n} < {HEADER.size} bytes")
    magic, version, code, n_ch, n_s, sfreq, seq, ts = HEADER.unpack_from(value, 0)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r} (expected {MAGIC!r})")
    if version != WIRE_VERSION:
        raise WireError(f"unsupported wire version {version} (this reader knows {WIRE_VERSION})")
    dt = _DTYPES.get(code)
    if dt is None:
        raise WireError(f"unknown dtype code {code}")
    if not 1 <= n_ch <= MAX_CHANNELS or not 1 <= n_s <= MAX_SAMPLES:
        raise WireError(f"bad shape: {n_ch} channels x {n_s} samples")
    if not (math.isfinite(sfreq) and sfreq > 0):
        raise WireError(f"bad sampling rate {sfreq!r}")
    if not math.isfinite(ts):
        raise WireError(f"bad timestamp {ts!r}")
    expected = HEADER.size + n_ch * n_s * dt.itemsize
    if n != expected:
        raise WireError(f"payload length {n - HEADER.size} != {n_ch}x{n_s}x{dt.itemsize} bytes")
    data = np.frombuffer(value, dtype=dt, count=n_ch * n_s, offset=HEADER.size).reshape(n_ch, n_s)
    return WireChunk(data=data, sfreq=float(sfreq), seq=int(seq), timestamp=float(ts))


def encode_marker(stream_id: str, sample: int, label: str | None) -> bytes:
    """Encode a cue marker as JSON bytes."""
    return json.dumps({"stream_id": stream_id, "sample": int(sample), "label": label},
                      separators=(",", ":")).encode()


def decode_marker(value: bytes | None, key: bytes | None = None) -> tuple[str, int, str | None]:
    """Decode a cue marker -> (stream_id, sample, label); `WireError` with a reason when malformed.

    The stream id comes from the JSON body, or from the message key when the body has none.
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
    if label is not None and not isinstance(label, str):
        raise WireError(f"marker label must be a string or null, got {label!r}")
    if label == "unknown":
        label = None
    return sid, sample, label
