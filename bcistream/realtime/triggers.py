"""When windows are due: the hop rule and cue-locked windows (positions resolved by the stream tracker)."""

from __future__ import annotations

import math

from bcistream.realtime.streams import StreamState
from bcistream.realtime.tracker import StreamTracker

__all__ = ["cue_windows", "first_hop", "hop_end"]


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


def cue_windows(st: StreamState, tracker: StreamTracker, ring: int, offset: int, window: int
                ) -> tuple[list[tuple[int, int, str | None]], list[tuple[str, str]]]:
    """Take the stream's pending cues whose window ``[cue + offset, + window)`` is complete.

    Cue positions are resolved by the tracker (`StreamTracker.cue_sample`: transport ``seq``
    through the stream's shift and session, or a timestamp on the de-jittered line).

    Parameters
    ----------
    ring : int
        Samples of history kept (older windows cannot be decided any more).

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
            cue.sample = tracker.cue_sample(st, cue)
            if cue.sample is None:
                keep.append(cue)
                continue
        start = cue.sample + offset
        end = start + window
        if end > st.index:
            keep.append(cue)
        elif start < st.valid_from or start < st.p_base:
            lost.append(("gap", f"cue at {cue.sample}: window crosses a gap, reset or swap"))
        elif start - 1 < st.index - ring:
            lost.append(("late", f"cue at {cue.sample}: marker arrived after the history kept"))
        else:
            ready.append((start, end, cue.label))
    st.cues = keep
    return ready, lost
