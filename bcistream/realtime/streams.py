"""Per-stream state, kept in arrays shared by all streams so the engine can work on many at once.

For each stream: the causal filter state of the decoder's signals (CSP projections, or channels),
a ring of running sums of their per-sample moments (a window's mean = difference of two entries),
a ring of source timestamps, the bookkeeping of sample indices, and the recent raw samples (to
rebuild the state after a model swap) as views of the engine's own stacked group arrays, so keeping
them costs no copy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PendingCue", "StreamPool", "StreamState"]


@dataclass
class PendingCue:
    """A cue marker waiting for its window's samples (``sample`` None until its timestamp maps)."""

    label: str | None
    sample: int | None
    timestamp: float | None
    seq: int | None = None  #: position as the transport's sequence number (mapped through the shift)
    session: str | None = None  #: the source session ``seq`` belongs to (``None``: the current one)


@dataclass
class StreamState:
    """Bookkeeping of one stream (the heavy state lives in `StreamPool` row ``slot``).

    Sample indices are absolute in the stream: the ``seq`` of the transport when it has one,
    otherwise samples counted from the first chunk (plus gaps seen in the timestamps).
    """

    stream_id: str
    slot: int
    fresh: bool = True  #: no sample accepted yet
    index: int = 0  #: index of the next expected sample
    shift: int = 0  #: transport seq - index (grows when gaps are bridged with on_gap="continue")
    last_ts: float | None = None  #: timestamp of the last accepted sample
    seg_start: int = 0  #: first sample since the filter last started from zero state
    p_base: int = 0  #: first sample of the running sums of squares
    valid_from: int = 0  #: windows must start here or later
    hop_k: int = 1  #: number of the next hop
    hop_next: int = 0  #: end sample of the next hop window
    broken: bool = False  #: a refused chunk broke continuity: restart the filter on the next chunk
    cues: list[PendingCue] = field(default_factory=list)
    history: deque = field(default_factory=deque)  #: raw (C, n) arrays of the current segment
    history_n: int = 0  #: samples in ``history``

    def keep_raw(self, data: np.ndarray, limit: int) -> None:
        """Remember raw samples, dropping the oldest arrays not needed to hold ``limit`` samples."""
        hist = self.history
        hist.append(data)
        self.history_n += data.shape[1]
        while self.history_n - hist[0].shape[1] >= limit:
            self.history_n -= hist.popleft().shape[1]

    def raw_tail(self, length: int) -> np.ndarray:
        """The last ``length`` raw samples, shape (C, length)."""
        return np.concatenate(list(self.history), axis=1)[:, self.history_n - length:]

    def clear_raw(self) -> None:
        """Forget raw samples (the filter restarts)."""
        self.history.clear()
        self.history_n = 0
    refused: int = 0
    gaps: int = 0
    # The stream tracker's bookkeeping (`bcistream.realtime.tracker`).
    session: str | None = None  #: source session of the current segment
    past_shifts: dict = field(default_factory=dict)  #: session -> shift, for late markers of old sessions
    restarts: int = 0
    clock_steps: int = 0
    bursts: int = 0
    fit: tuple | None = None  #: de-jitter line (i0, t0, slope) of the current segment
    units_ok: bool | None = None  #: plausibility of undeclared units: None = still checking
    unit_buf: list = field(default_factory=list)
    unit_n: int = 0
    unit_error: str = ""


class StreamPool:
    """Arrays holding the state of all streams, one row (slot) per stream, grown on demand.

    Parameters
    ----------
    n_channels, n_signals, n_state : int
        Channels of the raw signal, signals filtered per stream, filter state size per signal.
    ring : int
        Length of the rings of running sums and timestamps (window + late-cue history).
    raw_ring : int
        Raw samples kept per stream (window + swap pre-roll).
    capacity : int
        Initial number of slots.
    n_moments : int, optional
        Running-sum entries per sample (default ``n_signals``: the squares of the signals).
    """

    def __init__(self, n_channels: int, n_signals: int, n_state: int, ring: int, raw_ring: int,
                 capacity: int = 16, n_moments: int | None = None) -> None:
        self.n_channels, self.ring, self.raw_ring = n_channels, ring, raw_ring
        self.capacity = 0
        m = n_signals if n_moments is None else n_moments
        self.zi = np.zeros((0, n_signals, n_state))
        self.qlast = np.zeros((0, m))
        self.sums = np.zeros((0, ring, m))
        self.ts = np.zeros((0, ring))
        self.free: list[int] = []
        self.used = 0
        self._grow(capacity)

    def _grow(self, capacity: int) -> None:
        def grown(arr: np.ndarray, fill: float = 0.0) -> np.ndarray:
            out = np.full((capacity, *arr.shape[1:]), fill, dtype=arr.dtype)
            out[: arr.shape[0]] = arr
            return out

        self.zi, self.qlast, self.sums = grown(self.zi), grown(self.qlast), grown(self.sums)
        self.ts = grown(self.ts, np.nan)
        self.capacity = capacity

    def state_shape(self) -> tuple[tuple[int, int], int]:
        """Filter state shape per stream and moments per sample (as `StreamingDecoder.state_shape`)."""
        return (self.zi.shape[1], self.zi.shape[2]), self.qlast.shape[1]

    def reshape(self, n_signals: int, n_state: int, n_moments: int) -> None:
        """Reallocate the numeric state for a decoder of another state shape."""
        self.zi = np.zeros((self.capacity, n_signals, n_state))
        self.qlast = np.zeros((self.capacity, n_moments))
        self.sums = np.zeros((self.capacity, self.ring, n_moments))

    def take(self) -> int:
        """A free slot (state zeroed)."""
        if self.free:
            slot = self.free.pop()
        else:
            if self.used == self.capacity:
                self._grow(max(16, 2 * self.capacity))
            slot = self.used
            self.used += 1
        self.reset(slot)
        self.ts[slot] = np.nan
        return slot

    def release(self, slot: int) -> None:
        """Give a slot back."""
        self.free.append(slot)

    def reset(self, slot: int) -> None:
        """Zero the filter state and running sums of one slot."""
        self.zi[slot] = 0.0
        self.qlast[slot] = 0.0
