"""Vectorised steps of the engine over groups of streams, and the decision records they end in."""

from __future__ import annotations

import functools
import time

import numpy as np

from bcistream.realtime.model import BlockFilter
from bcistream.realtime.records import SCHEMA_VERSION, Decision
from bcistream.realtime.streams import StreamPool

__all__ = ["advance", "make_decisions", "project", "window_power"]


@functools.lru_cache(maxsize=512)
def _lower_ones(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n)))


def project(filters: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project raw chunks onto the CSP filters and flag chunks with non-finite samples.

    Parameters
    ----------
    filters : ndarray, shape (k, n_channels)
    X : ndarray, shape (G, n_channels, n)

    Returns
    -------
    Y : ndarray, shape (G, k, n)
    ok : ndarray of bool, shape (G,)
        False where the chunk holds NaN or Inf (they propagate through the projection and the sum,
        so one reduction over the k projections checks all channels).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        Y = np.matmul(filters, X)
        ok = np.isfinite(Y.sum(axis=(1, 2)))
    return Y, ok


def advance(pool: StreamPool, block: BlockFilter, slots: np.ndarray, starts: np.ndarray, Y: np.ndarray,
            T: np.ndarray | None, resets: np.ndarray) -> None:
    """Filter the projections, extend the running sums of squares and the timestamps of G streams.

    The causal filter of the pipeline is applied to the CSP projections instead of the channels:
    both are linear and time-invariant, so ``W (h * x) = h * (W x)``, with k instead of C signals.

    Parameters
    ----------
    pool : StreamPool
    block : BlockFilter
    slots : ndarray of int, shape (G,)
    starts : ndarray of int, shape (G,)
        Absolute index of each chunk's first sample.
    Y : ndarray, shape (G, k, n)
        Projected raw samples (`project`).
    T : ndarray, shape (G, n) or None
        Source timestamps (NaN where unknown).
    resets : ndarray of bool, shape (G,)
        Streams whose filter starts from zero state at this chunk.
    """
    G, k, n = Y.shape
    S = block.n_state
    Z = pool.zi[slots]
    base = pool.qlast[slots]
    if resets.any():
        Z[resets] = 0.0
        base[resets] = 0.0
    F, Zf = block.apply(Y.reshape(G * k, n), Z.reshape(G * k, S))
    pool.zi[slots] = Zf.reshape(G, k, S)
    F = F.reshape(G, k, n)
    # Running sums along time as one product with a triangular matrix: faster than cumsum over
    # short rows, and it yields the (G, n, k) layout of the ring directly.
    Q = np.matmul(_lower_ones(n), (F * F).transpose(0, 2, 1))
    Q += base[:, None, :]
    pool.qlast[slots] = Q[:, -1, :]
    idx = starts[:, None] + np.arange(n)
    rows = (slots[:, None] * pool.ring + idx % pool.ring).ravel()
    pool.sums.reshape(-1, k)[rows] = Q.reshape(-1, k)
    if T is not None:
        pool.ts.reshape(-1)[rows] = T.ravel()


def window_power(pool: StreamPool, slots: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 bases: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean power of the CSP projections over windows ``[start, end)``, and their end timestamps.

    The power is the difference of two running sums of squares (the sums restart at ``bases``,
    the first sample after a reset), so no window is summed sample by sample.

    Returns
    -------
    power : ndarray, shape (D, k)
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
