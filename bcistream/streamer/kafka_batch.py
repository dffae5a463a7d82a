"""One fetched batch of chunk messages decoded with one numpy operation (the wire format allows it).

A backlog or a busy topic arrives as hundreds of messages of one size (same channels, samples and
dtype). Their bytes joined are an array of one structured dtype (header fields + samples), so
``np.frombuffer`` decodes every header and every sample at once, and the checks run as array
comparisons. Runs of consecutive chunks of one stream (contiguous sequence numbers, one session)
then become one chunk each, with every message's own timestamps kept.

Whatever does not fit (other sizes, version 1, a ``units`` header, a bad field, a key that is not
UTF-8) returns ``None`` and the caller decodes message by message, with its dead letters and
reasons (`bcistream.streamer.wire.decode_chunk`): the fast path never refuses anything itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcistream.streamer.wire import HEADER, MAGIC, MAX_CHANNELS, MAX_SAMPLES, WIRE_VERSION, session_text

__all__ = ["Run", "decode_batch"]

_CODES = {1: "<f4"}  #: float32 only: the slow path hands float64 on unconverted


@dataclass
class Run:
    """Consecutive chunks of one stream from one fetch, joined.

    Parameters
    ----------
    stream_id : str
    data : ndarray, shape (n_channels, n_samples)
        Samples of every message of the run, in order (a new array).
    timestamps : ndarray, shape (n_samples,)
        Each message's first timestamp plus its sample steps.
    seq : int
        Sequence number of the first sample.
    session : str or None
    offsets : ndarray of int
        Offsets of the run's messages.
    n_messages, n_bytes : int
    """

    stream_id: str
    data: np.ndarray
    timestamps: np.ndarray
    seq: int
    session: str | None
    offsets: np.ndarray
    n_messages: int
    n_bytes: int

    @property
    def n_samples(self) -> int:
        """Samples in the run."""
        return int(self.data.shape[1])


def _dtype(n_ch: int, n_s: int, code: int) -> np.dtype:
    return np.dtype([("magic", "S4"), ("version", "u1"), ("code", "u1"), ("n_ch", "<u2"),
                     ("n_s", "<u4"), ("sfreq", "<f8"), ("seq", "<u8"), ("ts", "<f8"), ("session", "<u8"),
                     ("data", _CODES[code], (n_ch, n_s))])


def decode_batch(records: Sequence[Any], n_channels: int | None, sfreq: float | None,
                 min_records: int = 8) -> list[Run] | None:
    """Runs of ``records`` (kafka-python ``ConsumerRecord`` s of one partition), or None.

    None means "decode these one by one": fewer than ``min_records``, sizes differ, a header or
    key the fast path does not handle, or any field out of line (the slow path names the reason).
    """
    if len(records) < min_records:
        return None
    first = records[0].value
    if first is None or len(first) <= HEADER.size:
        return None
    size = len(first)
    values = []
    for rec in records:
        v = rec.value
        if v is None or len(v) != size or rec.key is None or rec.headers:
            return None
        values.append(v)
    head = HEADER.unpack_from(first, 0)
    code, n_ch, n_s = head[2], head[3], head[4]
    if code not in _CODES or not 1 <= n_ch <= MAX_CHANNELS or not 1 <= n_s <= MAX_SAMPLES:
        return None
    dt = _dtype(n_ch, n_s, code)
    if dt.itemsize != size:
        return None
    arr = np.frombuffer(b"".join(values), dtype=dt)
    rate = arr["sfreq"]
    ok = ((arr["magic"] == MAGIC).all() and (arr["version"] == WIRE_VERSION).all()
          and (arr["code"] == code).all() and (arr["n_ch"] == n_ch).all() and (arr["n_s"] == n_s).all()
          and np.isfinite(rate).all() and (rate > 0).all() and (rate == rate[0]).all()
          and np.isfinite(arr["ts"]).all())
    if not ok or (n_channels is not None and n_ch != n_channels):
        return None
    if sfreq is not None and abs(float(rate[0]) - sfreq) > 1e-6:
        return None
    try:
        keys = [rec.key.decode("utf-8") for rec in records]
    except UnicodeDecodeError:
        return None
    offsets = np.fromiter((rec.offset for rec in records), dtype=np.int64, count=len(records))
    steps = np.arange(n_s) / float(rate[0])
    by_stream: dict[str, list[int]] = {}
    for i, sid in enumerate(keys):
        by_stream.setdefault(sid, []).append(i)
    runs = []
    for sid, idx in by_stream.items():
        ix = np.asarray(idx)
        seq, session = arr["seq"][ix], arr["session"][ix]
        # Split where the sequence is not contiguous or the session changes: each part one run.
        breaks = np.flatnonzero((seq[1:] != seq[:-1] + n_s) | (session[1:] != session[:-1])) + 1
        for part in np.split(ix, breaks):
            block = arr["data"][part]  # (k, n_ch, n_s)
            data = np.ascontiguousarray(block.transpose(1, 0, 2)).reshape(n_ch, len(part) * n_s)
            ts = (arr["ts"][part][:, None] + steps[None, :]).ravel()
            runs.append(Run(sid, data, ts, int(arr["seq"][part[0]]),
                            session_text(int(arr["session"][part[0]])), offsets[part], len(part),
                            len(part) * size))
    return runs
