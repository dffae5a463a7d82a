"""The engine's intake: marker values through the profile's map, tracker findings, unit checks.

Kept apart from `bcistream.realtime.engine` (the numeric path) so the input contract's glue lives
in one small place: `Intake` is mixed into `Engine` and works on its streams, counters and events.
"""

from __future__ import annotations

import numpy as np

from bcistream.data.contract import MarkerMap, MarkerResult
from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.realtime.protocols import Chunk, Marker
from bcistream.realtime.streams import PendingCue, StreamPool, StreamState
from bcistream.realtime.tracker import StreamTracker

__all__ = ["CORRUPT", "Intake", "MAX_MARKER_KEYS", "UNIT_FIX"]

#: How a user declares the unit of a stream (named in the refusal of an implausible one).
UNIT_FIX = ("LSL: channel <unit> metadata in the outlet's desc; Kafka: a 'units' message header; "
            "or for streams that declare none: bcistream run --units microvolts, or the profile's "
            "units key")

#: Distinct unmapped marker values counted one by one (more are counted under ``"<other>"``).
MAX_MARKER_KEYS = 256

_UNKNOWN_CUE = MarkerResult("unknown-cue", None, "None")

#: One-line details of chunks the tracker refuses as corrupt.
CORRUPT = {"seq-outlier": "refused chunk: its sequence number is far out of line with the stream's "
                           "(and its timestamps); the stream continues"}


class Intake:
    """Marker intake, tracker findings and unit checks of the `Engine` (see the module docstring)."""

    # Provided by the engine (with its methods _stream, _event, _refuse, _cue_lost and _due_cues;
    # the last two from its `Cues` mixin).
    events: EventQueue
    marker_map: MarkerMap
    tracker: StreamTracker
    pool: StreamPool
    unmapped_markers: dict[str, int]
    _stats: dict[str, int]
    _cues: bool

    def _marker(self, marker: Marker, now: float, due: list[tuple]) -> None:
        # Every marker value goes through the model profile's map, here and only here.
        res = _UNKNOWN_CUE if marker.label is None else self.marker_map.map(marker.label)
        if not res.is_cue:
            if res.kind == "reject":
                self._stats["markers_rejected"] += 1
            else:
                self._unmapped(str(marker.stream_id), res)
            return
        if not self._cues:
            return
        st = self._stream(str(marker.stream_id))
        if marker.sample is None and marker.timestamp is None:
            self._cue_lost(st, "no-position", "marker without sample or timestamp")
            return
        cue = PendingCue(res.label, None, None if marker.timestamp is None else float(marker.timestamp),
                         None if marker.sample is None else int(marker.sample), marker.session)
        st.cues.append(cue)
        if not st.fresh:
            self._due_cues(st, now, due)

    def _unmapped(self, stream_id: str, res: MarkerResult) -> None:
        """Count a marker value that is no cue; report each distinct value once."""
        self._stats["markers_unmapped"] += 1
        key = res.text if (res.text in self.unmapped_markers
                           or len(self.unmapped_markers) < MAX_MARKER_KEYS) else "<other>"
        seen = self.unmapped_markers.get(key, 0)
        self.unmapped_markers[key] = seen + 1
        if not seen:
            classes = ", ".join(self.marker_map.class_names)
            self.events.append(EngineEvent(
                "marker", stream_id, 0, res.kind,
                f"marker {key!r} is {'malformed' if res.kind == 'malformed' else 'no class of the model'}"
                f" (classes: {classes}; codes and aliases per the profile): counted, never decided "
                f"or scored"))

    def _track(self, kind: str, st: StreamState, size: int, reason: str, detail: str) -> None:
        """Findings of the stream tracker: counted and reported as events."""
        key = {"restart": "restarts", "clock_step": "clock_steps", "timing": "timing_bursts"}.get(kind)
        if key is not None:
            self._stats[key] += 1
        self._event(kind, st, size, reason, detail)

    def _refit(self, st: StreamState) -> None:
        """De-jitter line of the stream from its ring of timestamps (current segment)."""
        ring = self.pool.ring
        lo = max(st.index - min(ring, self.tracker.span), st.seg_start)
        idx = np.arange(lo, st.index)
        self.tracker.refit(st, idx, self.pool.ts[st.slot, idx % ring])

    def _recent(self, st: StreamState, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The last ``k`` raw samples and timestamps of a stream (fewer if not kept)."""
        k = min(k, st.history_n, st.index - st.seg_start)
        if k <= 0:
            return None
        idx = np.arange(st.index - k, st.index)
        return st.raw_tail(k), self.pool.ts[st.slot, idx % self.pool.ring]

    def _units(self, st: StreamState, ch: Chunk, data: np.ndarray) -> bool:
        """Whether the stream may go on: declared units pass; undeclared ones are checked first."""
        if ch.units_declared:
            st.units_ok = True
            return True
        ok = self.tracker.check_units(st, data, f"stream {st.stream_id!r}", UNIT_FIX)
        if ok is False:
            self._stats["streams_refused_units"] += 1
            self._refuse(st, "units", data.shape[1], st.unit_error)
            return False
        return True
