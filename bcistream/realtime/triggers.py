"""When windows are due: the hop rule and cue-locked windows (markers by sample or by timestamp)."""

from __future__ import annotations

import math

import numpy as np

from bcistream.realtime.streams import StreamPool, StreamState

__all__ = ["cue_windows", "first_hop", "hop_end", "map_timestamp"]


def hop_end(k: int, hop: float) -> int:
    """End sample (exclusive) of hop window ``k``: ``floor(k * hop + 0.5)`` (round half up)."""
    return math.floor(k * hop + 0.5)


def first_hop(start: int, window: int, hop: float) -> tuple[int, int]:
    """``(k, end)`` of the first hop window that lies entirely at or after ``start``."""
    first = start + window
    k = max(1, math.ceil((first - 0.5) / hop))
    while k > 1 and hop_end(k - 1, hop) >= first:
        k -= 1
    while hop_end(k, hop) < first:
        k += 1
    return k, hop_end(k, hop)


def map_timestamp(st: StreamState, pool: StreamPool, sfreq: float, t: float) -> int | None:
    """Index of the stream's sample nearest to source time ``t`` (``None`` until it has arrived).

    Looks the time up in the stream's ring of sample timestamps; a time older than the ring is
    extrapolated from its oldest sample (the window will then be reported as too late).
    """
    if st.fresh or st.last_ts is None or t > st.last_ts + 0.5 / sfreq:
        return None
    ring = pool.ring
    lo = max(st.index - ring, st.seg_start)
    idx = np.arange(lo, st.index)
    ts = pool.ts[st.slot, idx % ring]
    if len(ts) == 0 or np.isnan(ts[-1]):
        return None
    pos = int(np.searchsorted(ts, t - 0.5 / sfreq))
    if pos == 0 and (np.isnan(ts[0]) or t < ts[0] - 0.5 / sfreq):
        return None if np.isnan(ts[0]) else lo - int(round((ts[0] - t) * sfreq))
    return int(idx[min(pos, len(idx) - 1)])


def cue_windows(st: StreamState, pool: StreamPool, sfreq: float, offset: int, window: int
                ) -> tuple[list[tuple[int, int, str | None]], list[tuple[str, str]]]:
    """Take the stream's pending cues whose window ``[cue + offset, + window)`` is complete.

    Returns
    -------
    ready : list of (start, end, label)
        Windows to decide now.
    lost : list of (reason, detail)
        Cues that can never be decided: ``"gap"`` (the window reaches before the last reset or
        swap) or ``"late"`` (the marker came after the history kept).
    """
    keep, ready, lost = [], [], []
    for cue in st.cues:
        if cue.sample is None:
            cue.sample = map_timestamp(st, pool, sfreq, cue.timestamp)
            if cue.sample is None:
                keep.append(cue)
                continue
        start = cue.sample + offset
        end = start + window
        if end > st.index:
            keep.append(cue)
        elif start < st.valid_from or start < st.p_base:
            lost.append(("gap", f"cue at {cue.sample}: window crosses a gap, reset or swap"))
        elif start - 1 < st.index - pool.ring:
            lost.append(("late", f"cue at {cue.sample}: marker arrived after the history kept"))
        else:
            ready.append((start, end, cue.label))
    st.cues = keep
    return ready, lost
