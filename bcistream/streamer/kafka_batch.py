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
from operator import attrgetter
from typing import Any

import numpy as np

from bcistream.streamer.wire import HEADER, MAGIC, MAX_CHANNELS, MAX_SAMPLES, WIRE_VERSION, session_text

__all__ = ["Run", "decode_batch"]

_CODES = {1: "<f4"}  #: float32 only: the slow path hands float64 on unconverted
_VALUE, _KEY, _HEADERS, _OFFSET = (attrgetter(name) for name in ("value", "key", "headers", "offset"))


@dataclass
class Run:
    """Consecutive chunks of one stream from one fetch, joined.

    Parameters
    ----------
    stream_id : str
    data : ndarray, shape (n_channels, n_samples)
        Samples of every message of the run, in order (a copy, never a view of the messages'
        read-only bytes).
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
    values = list(map(_VALUE, records))
    first = values[0]
    if first is None or len(first) <= HEADER.size:
        return None
    size = len(first)
    raw_keys = list(map(_KEY, records))
    if (None in values or None in raw_keys or any(map(_HEADERS, records))
            or set(map(len, values)) != {size}):
        return None
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
        keys = [k.decode("utf-8") for k in raw_keys]
    except UnicodeDecodeError:
        return None
    return _runs(arr, keys, np.fromiter(map(_OFFSET, records), dtype=np.int64, count=len(records)),
                 n_ch, n_s, size)


def _runs(arr: np.ndarray, keys: list[str], offsets: np.ndarray, n_ch: int, n_s: int,
          size: int) -> list[Run]:
    """Split decoded messages into runs: grouped by stream (first-seen order), then contiguous.

    One stable sort and array comparisons find every run's bounds; each run is then one slice
    (the per-run Python work is a transpose copy and a `Run`).
    """
    codes: dict[str, int] = {}
    stream = np.fromiter((codes.setdefault(k, len(codes)) for k in keys), dtype=np.int64,
                         count=len(keys))
    order = np.argsort(stream, kind="stable")
    seq, session, stream = arr["seq"][order], arr["session"][order], stream[order]
    # A run ends where the stream changes, the sequence is not contiguous or the session changes.
    breaks = np.flatnonzero((stream[1:] != stream[:-1]) | (seq[1:] != seq[:-1] + n_s)
                            | (session[1:] != session[:-1])) + 1
    bounds = np.concatenate(([0], breaks, [len(order)])).tolist()
    data = arr["data"][order]  # (n_messages, n_ch, n_s)
    steps = np.arange(n_s) / float(arr["sfreq"][0])
    ts = (arr["ts"][order][:, None] + steps[None, :]).reshape(-1)
    offsets = offsets[order]
    names = list(codes)
    firsts = bounds[:-1]
    seqs, sessions, sids = seq[firsts].tolist(), session[firsts].tolist(), stream[firsts].tolist()
    runs = []
    for a, b, first_seq, sess, sid in zip(firsts, bounds[1:], seqs, sessions, sids, strict=True):
        k = b - a
        block = data[a] if k == 1 else data[a:b].transpose(1, 0, 2).reshape(n_ch, k * n_s)
        runs.append(Run(names[sid], block, ts[a * n_s:b * n_s], first_seq, session_text(sess),
                        offsets[a:b], k, k * size))
    return runs
