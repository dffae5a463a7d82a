"""Vectorised steps of the engine over groups of streams, and the decision records they end in."""

from __future__ import annotations

import time

import numpy as np

from bcistream.decoders import StreamingDecoder
from bcistream.realtime.records import SCHEMA_VERSION, Decision
from bcistream.realtime.streams import StreamPool

__all__ = ["advance", "make_decisions", "window_moments"]


def advance(pool: StreamPool, decoder: StreamingDecoder, slots: np.ndarray, starts: np.ndarray,
            Y: np.ndarray, T: np.ndarray | None, resets: np.ndarray) -> None:
    """Advance G streams by one chunk each: the decoder filters and sums, the pool's rings store.

    Parameters
    ----------
    pool : StreamPool
    decoder : StreamingDecoder
    slots : ndarray of int, shape (G,)
    starts : ndarray of int, shape (G,)
        Absolute index of each chunk's first sample.
    Y : ndarray, shape (G, n_signals, n)
        The decoder's signals of the raw chunks (`StreamingDecoder.project`).
    T : ndarray, shape (G, n) or None
        Source timestamps (NaN where unknown).
    resets : ndarray of bool, shape (G,)
        Streams whose filter starts from zero state at this chunk.
    """
    n = Y.shape[2]
    Z = pool.zi[slots]
    base = pool.qlast[slots]
    if resets.any():
        Z[resets] = 0.0
        base[resets] = 0.0
    Zf, Q = decoder.advance(Z, base, Y)
    pool.zi[slots] = Zf
    m = Q.shape[2]
    pool.qlast[slots] = Q[:, -1, :]
    idx = starts[:, None] + np.arange(n)
    rows = (slots[:, None] * pool.ring + idx % pool.ring).ravel()
    pool.sums.reshape(-1, m)[rows] = Q.reshape(-1, m)
    if T is not None:
        pool.ts.reshape(-1)[rows] = T.ravel()


def window_moments(pool: StreamPool, slots: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 bases: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean moments over windows ``[start, end)``, and their end timestamps.

    The mean is the difference of two running sums (the sums restart at ``bases``, the first
    sample after a reset), so no window is summed sample by sample.

    Returns
    -------
    moments : ndarray, shape (D, n_moments)
    timestamps : ndarray, shape (D,)
        Source timestamp of each window's last sample (NaN when unknown).
    """
    ring = pool.ring
    flat = pool.sums.reshape(-1, pool.sums.shape[2])
    at_end = slots * ring + (ends - 1) % ring
    q_end = flat[at_end]
    q_start = flat[slots * ring + (starts - 1) % ring]
    q_start[starts == bases] = 0.0
    return (q_end - q_start) / window, pool.ts.reshape(-1)[at_end]


def make_decisions(due: list[tuple], labels: np.ndarray, proba: np.ndarray, ts: np.ndarray,
                   classes: np.ndarray, version: str) -> list[Decision]:
    """Decision records of classified due windows ``(stream, trigger, start, end, cue label, arrival)``.

    Latency runs from the arrival of the chunk that completed each window to now (monotonic).
    """
    now = time.monotonic()
    names = [str(c) for c in classes]
    rows = np.asarray(proba, dtype=np.float64).tolist()
    labels = [str(label) for label in labels]
    # The hot loop of the engine's output: fill the frozen records' __dict__ directly. The
    # dataclass __init__ (one object.__setattr__ per field, validating nothing) costs ~3x more;
    # tests check the result equals `Decision(**fields)`.
    new, put, schema = object.__new__, object.__setattr__, SCHEMA_VERSION
    out = []
    for d, label, row, t in zip(due, labels, rows, ts.tolist(), strict=True):
        st, trigger, _start, end, cue_label, arrival = d
        obj = new(Decision)
        put(obj, "__dict__", {"stream_id": st.stream_id, "trigger": trigger, "window_end": end,
                              "timestamp": None if t != t else t, "label": label,
                              "probabilities": dict(zip(names, row, strict=True)),
                              "model_version": version, "cue_label": cue_label,
                              "latency_ms": (now - arrival) * 1000.0, "arrival": arrival,
                              "decided": now, "schema": schema})
        out.append(obj)
    return out
