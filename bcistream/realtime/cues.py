"""The engine's pending cues: cue-locked windows that became due, and cues reported as lost.

Kept apart from `bcistream.realtime.engine` so a cue's life after `bcistream.realtime.intake`
queued it lives in one place: once its stream has the samples, the cue's window is resolved on the
stream's sample axis (`bcistream.realtime.triggers.cue_windows`; timestamp-placed cues on the
de-jittered line) and joins the due windows; a cue whose window can never be decided (it crosses
a gap, reset or swap, the marker came after the history kept, or the stream ended first) is counted
in ``cues_lost`` and reported as a ``cue_lost`` event. `Cues` is mixed into `Engine` and works on its
tracker, pool, counters and events.
"""

from __future__ import annotations

from bcistream.realtime.streams import StreamPool, StreamState
from bcistream.realtime.tracker import StreamTracker
from bcistream.realtime.triggers import cue_windows

__all__ = ["Cues"]


class Cues:
    """Pending-cue handling of the `Engine` (see the module docstring)."""

    # Provided by the engine (with its methods _event and _refit).
    tracker: StreamTracker
    pool: StreamPool
    offset: int
    window: int
    _stats: dict[str, int]

    def _due_cues(self, st: StreamState, arrival: float, due: list[tuple]) -> None:
        if any(c.sample is None and c.seq is None for c in st.cues):
            self._refit(st)  # cues placed by timestamp: on the de-jittered line
        ready, lost = cue_windows(st, self.tracker, self.pool.ring, self.offset, self.window)
        for reason, detail in lost:
            self._cue_lost(st, reason, detail)
        due.extend((st, "cue", start, end, label, arrival) for start, end, label in ready)

    def _end_cues(self, st: StreamState, reason: str = "stream-ended") -> int:
        """Report the stream's pending cues as lost: the stream ended (or the run stopped) first."""
        cues, st.cues = st.cues, []
        what = "the run stopped" if reason == "run-stopped" else "the stream ended"
        for cue in cues:
            if cue.sample is None:
                where = (f"cue at t={cue.timestamp:.3f} s" if cue.timestamp is not None
                         else f"cue at seq {cue.seq}")
                detail = f"{where}: {what} before the cue could be placed on it"
            else:
                end = cue.sample + self.offset + self.window
                detail = (f"cue at {cue.sample}: {what} at sample {st.index} of the stream, before "
                          f"the cue's window was complete (needs samples up to {end})")
            self._cue_lost(st, reason, detail)
        return len(cues)

    def _cue_lost(self, st: StreamState, reason: str, detail: str) -> None:
        self._stats["cues_lost"] += 1
        self._event("cue_lost", st, reason=reason, detail=detail)
