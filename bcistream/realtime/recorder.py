"""The recorder of labelled trials: a tap on the engine loop, pure computation, no I/O.

It sees the same batches the engine processes (`RecordingSource` wraps the source) and the
decisions it makes (`RecorderSink` is one more sink), keeps a ring of raw samples per stream, and
when a cue of a KNOWN class has its window plus pre-roll complete, cuts a `RecordedTrial`. The
trial waits for the engine's cue decision of the same window (joined by stream id and window end;
the engine decides it in the same loop iteration) and is then handed to a bounded queue that a
writer thread drains (``bcistream.streamer.trial_writer``). A full queue never blocks decoding:
the trial is counted as overflow and reported as an event.

Sample indices, duplicates, gaps, source restarts, cue positions and the unit check of undeclared
streams follow the engine's rules exactly: both use the stream tracker
(`bcistream.realtime.tracker`) with the same settings; marker values go through the profile's
`MarkerMap` (only cues of a known class become trials).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bcistream.data.contract import MarkerMap
from bcistream.data.profiles import Profile
from bcistream.data.trial_format import RecordedTrial
from bcistream.realtime.config import EngineConfig
from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.realtime.placement import check_chunk
from bcistream.realtime.protocols import Batch, Marker, Source
from bcistream.realtime.records import Decision
from bcistream.realtime.streams import PendingCue, StreamState
from bcistream.realtime.tracker import Placement, StreamTracker

__all__ = ["Recorder", "RecorderSink", "RecordingSource"]

#: Longer chunks are stored in pieces of at most this many samples (the ring holds a few seconds).
_PIECE = 256


@dataclass
class _Ring:
    """Raw samples and timestamps of one stream, indexed by absolute sample index modulo ``size``."""

    state: StreamState
    data: np.ndarray
    ts: np.ndarray
    seg_start: int = 0  #: first sample of the current contiguous stretch
    has_ts: bool = False  #: the stream has sent timestamps at least once
    cues: list[PendingCue] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.data.shape[1]

    def put(self, start: int, block: np.ndarray, stamps: np.ndarray | None) -> None:
        n, size = block.shape[1], self.size
        if n > size:
            block, start = block[:, n - size:], start + n - size
            stamps = None if stamps is None else stamps[n - size:]
            n = size
        i = start % size
        k = min(n, size - i)  # slices, not fancy indexing: this runs for every chunk of every stream
        self.data[:, i:i + k] = block[:, :k]
        if k < n:
            self.data[:, :n - k] = block[:, k:]
        if stamps is None and not self.has_ts:
            return  # the ring's timestamps are all NaN already
        self.has_ts = True
        self.ts[i:i + k] = np.nan if stamps is None else stamps[:k]
        if k < n:
            self.ts[:n - k] = np.nan if stamps is None else stamps[k:]

    def cut(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(start, end) % self.size
        return self.data[:, idx].copy(), self.ts[idx].copy()

    def recent(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The last ``k`` samples of the current stretch and their timestamps (fewer if not kept)."""
        st = self.state
        k = min(k, self.size, st.index - self.seg_start)
        return None if k <= 0 else self.cut(st.index - k, st.index)

    def stamps(self, span: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and timestamps of the last ``span`` samples of the current stretch."""
        st = self.state
        idx = np.arange(max(st.index - min(span, self.size), self.seg_start), st.index)
        return idx, self.ts[idx % self.size]


class Recorder:
    """Cut labelled trials out of live streams and queue them for a writer.

    Parameters
    ----------
    profile : Profile
        The streams' profile (channels, rate, window, offset, class names) — the model's.
    out : queue.Queue
        Bounded queue of `RecordedTrial` drained by the writer; never waited on.
    preroll_s : float
        Raw samples kept before each window (>= 1 s lets the zero-state filter of training settle).
    history_s : float
        How late a cue marker may arrive after its samples (raw samples kept beyond the trial).
    version : callable, optional
        Returns the model version in use (for trials the engine made no decision for).
    clock : callable
        Wall clock of ``recorded_at`` (default ``time.time``).
    config : EngineConfig, optional
        The engine's settings (its tracker's tolerances and unit check); defaults as the engine's.
    """

    def __init__(self, profile: Profile, out: queue.Queue, *, preroll_s: float = 1.0, history_s: float = 4.0,
                 version: Callable[[], str | None] | None = None, clock: Callable[[], float] = time.time,
                 config: EngineConfig | None = None) -> None:
        if preroll_s < 0 or history_s < 0:
            raise ValueError("preroll_s and history_s must be >= 0")
        self.profile = profile
        self.out = out
        self.sfreq = profile.sfreq
        self.preroll = int(round(preroll_s * profile.sfreq))
        self.window, self.offset = profile.window_samples, profile.offset_samples
        self.classes = frozenset(profile.class_names)
        self._n_channels = profile.n_channels
        self._size = self.preroll + max(self.offset, 0) + self.window + int(round(history_s * self.sfreq))
        self._version = version or (lambda: None)
        self._clock = clock
        self.tracker = StreamTracker.from_config(self.sfreq, config or EngineConfig(), self.window)
        self.markers = MarkerMap.from_profile(profile)
        self._profile_dict = profile.to_dict()
        self.streams: dict[str, _Ring] = {}
        self.events = EventQueue()
        #: trials cut, waiting for the engine's decision of the same loop iteration: (stream, window end)
        self._waiting: dict[tuple[str, int], RecordedTrial] = {}
        self._stats = {"trials": 0, "overflow": 0, "incomplete": 0, "unlabelled": 0, "joined": 0}

    # ------------------------------------------------------------------ public surface
    def stats(self) -> dict[str, int]:
        """Counters: trials queued, ``overflow`` (queue full), ``incomplete`` (gap / too late /
        non-finite), ``unlabelled`` cues ignored, ``joined`` (trials carrying the engine's decision)."""
        out = dict(self._stats)
        out["waiting"] = len(self._waiting)
        return out

    def observe(self, batch: Batch) -> None:
        """Take one batch (markers first, as the engine), then cut every trial that became complete.

        Trials cut at earlier calls have been through the engine by now: they are released first.
        """
        self.release()
        for marker in batch.markers:
            self._marker(marker)
        n_ch, streams = self._n_channels, self.streams
        for ch in batch.chunks:
            ring = streams.get(ch.stream_id) or self._ring(str(ch.stream_id))
            data, st = ch.data, ring.state
            # Fast path (as the engine's): a well-formed chunk continuing its stream, no cue pending.
            if (ch.timestamps is None and ch.seq is not None and ch.seq == st.index + st.shift
                    and st.units_ok and not st.fresh and not st.broken and not ring.cues
                    and (ch.session is None or ch.session == st.session)
                    and type(data) is np.ndarray and data.ndim == 2 and data.shape[0] == n_ch
                    and data.dtype.kind == "f" and 0 < data.shape[1] <= _PIECE):
                ring.put(st.index, data, None)
                st.index += data.shape[1]
                continue
            if check_chunk(ch, n_ch) is not None:
                ring.state.broken = True  # continuity is lost: nothing before the next chunk is usable
                continue
            if st.units_ok is False:
                continue
            placed = self.tracker.place(st, ch, None if ch.seq is not None else ring.recent)
            if not isinstance(placed, Placement):
                continue  # all seen before, or corrupt (the engine reports both)
            skip, start, gap = placed.skip, placed.start, placed.gap
            data = ch.data[:, skip:] if skip else ch.data
            if st.units_ok is None:
                if ch.units_declared:
                    st.units_ok = True
                elif self.tracker.check_units(st, data, st.stream_id, "") is False:
                    continue  # refused for its unit (the engine reports it): no trials from it
            stamps = None if ch.timestamps is None else np.asarray(ch.timestamps[skip:], dtype=np.float64)
            if st.fresh or gap or st.broken or placed.restart:
                ring.seg_start, st.broken = start, False
            st.fresh = False
            n = data.shape[1]
            if n <= _PIECE and not ring.cues:  # the common case: one short chunk, no cue pending
                ring.put(start, data, stamps)
                st.index = start + n
                if stamps is not None:
                    st.last_ts = float(stamps[-1])
                continue
            # Piece by piece, cutting due trials before a later piece overwrites the ring.
            for a in range(0, n, _PIECE):
                b = min(a + _PIECE, n)
                ring.put(start + a, data[:, a:b], None if stamps is None else stamps[a:b])
                st.index = start + b
                if stamps is not None:
                    st.last_ts = float(stamps[b - 1])
                if ring.cues:
                    self._due(ring)

    def observe_decisions(self, decisions: Sequence[Decision]) -> None:
        """Join cue decisions to the trials waiting for them; those trials are queued at once."""
        for d in decisions:
            if d.trigger != "cue":
                continue
            trial = self._waiting.pop((d.stream_id, int(d.window_end)), None)
            if trial is None:
                continue
            decision = {"label": d.label, "probabilities": dict(d.probabilities),
                        "model_version": d.model_version, "window_end": int(d.window_end),
                        "timestamp": d.timestamp}
            self._stats["joined"] += 1
            self._emit(RecordedTrial(**{**trial.__dict__, "decision": decision,
                                        "model_version": d.model_version}))

    def release(self) -> None:
        """Queue the waiting trials the engine made no decision for (it had its chance)."""
        waiting, self._waiting = self._waiting, {}
        for trial in waiting.values():
            self._emit(trial)

    # ------------------------------------------------------------------ internals
    def _ring(self, stream_id: str) -> _Ring:
        ring = self.streams.get(stream_id)
        if ring is None:
            ring = _Ring(StreamState(stream_id=stream_id, slot=-1),
                         np.zeros((self.profile.n_channels, self._size), dtype=np.float32),
                         np.full(self._size, np.nan))
            self.streams[stream_id] = ring
        return ring

    def _marker(self, marker: Marker) -> None:
        res = None if marker.label is None else self.markers.map(marker.label)
        if res is None or res.kind != "class":
            self._stats["unlabelled"] += 1
            return
        if marker.sample is None and marker.timestamp is None:
            return
        self._ring(str(marker.stream_id)).cues.append(PendingCue(
            res.label, None, None if marker.timestamp is None else float(marker.timestamp),
            None if marker.sample is None else int(marker.sample), marker.session))

    def _due(self, ring: _Ring) -> None:
        st, keep = ring.state, []
        if any(c.sample is None and c.seq is None for c in ring.cues):
            self.tracker.refit(st, *ring.stamps(self.tracker.span))
        for cue in ring.cues:
            timestamp = cue.timestamp
            if cue.sample is None:
                cue.sample = self.tracker.cue_sample(st, cue)
                if cue.sample is None:
                    keep.append(cue)
                    continue
            win_start = cue.sample + self.offset
            start, end = win_start - self.preroll, win_start + self.window
            if end > st.index:
                keep.append(cue)
                continue
            if start < ring.seg_start or start < st.index - ring.size:
                self._lost(st.stream_id, cue.sample, "gap or marker later than the history kept")
                continue
            data, stamps = ring.cut(start, end)
            if not np.isfinite(data).all():
                self._lost(st.stream_id, cue.sample, "non-finite samples")
                continue
            at = cue.sample - start
            if timestamp is None and 0 <= at < len(stamps) and not np.isnan(stamps[at]):
                timestamp = float(stamps[at])
            trial = RecordedTrial(
                stream_id=st.stream_id, label=str(cue.label), cue_sample=int(cue.sample),
                start_sample=int(start), data=data, preroll=self.preroll, profile=self._profile_dict,
                cue_timestamp=timestamp, timestamps=None if np.isnan(stamps).all() else stamps,
                model_version=self._version(), decision=None, recorded_at=float(self._clock()),
            )
            self._waiting[(st.stream_id, int(end))] = trial
        ring.cues = keep

    def _lost(self, stream_id: str, cue: int, why: str) -> None:
        self._stats["incomplete"] += 1
        self.events.append(EngineEvent("trial_lost", stream_id, reason="incomplete",
                                       detail=f"cue at {cue}: trial not recorded ({why})"))

    def _emit(self, trial: RecordedTrial) -> None:
        try:
            self.out.put_nowait(trial)
        except queue.Full:
            self._stats["overflow"] += 1
            self.events.append(EngineEvent(
                "recorder_overflow", trial.stream_id, int(trial.data.shape[1]), "queue-full",
                f"trial at cue {trial.cue_sample} not recorded: the writer queue is full "
                f"({self.out.maxsize}); the store is too slow"))
            return
        self._stats["trials"] += 1


class RecordingSource:
    """A `Source` that shows every batch to a `Recorder` before the engine gets it.

    Everything else (``resume_point``, ``commit``, ``close`` and adapter attributes such as
    ``stats`` or ``replayed``) is the wrapped source's.
    """

    def __init__(self, source: Source, recorder: Recorder) -> None:
        self.source = source
        self.recorder = recorder

    def poll(self, timeout: float = 0.0) -> Batch:
        """Poll the wrapped source and let the recorder observe the batch."""
        batch = self.source.poll(timeout)
        self.recorder.observe(batch)
        return batch

    def resume_point(self) -> Any:
        """The wrapped source's."""
        return self.source.resume_point()

    def commit(self, point: Any) -> None:
        """The wrapped source's."""
        self.source.commit(point)

    def close(self) -> None:
        """Close the wrapped source."""
        self.source.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


class RecorderSink:
    """A `Sink` handing the engine's decisions to a `Recorder` (joins them to waiting trials)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def write(self, decisions: Sequence[Decision]) -> None:
        """Join cue decisions to trials."""
        self.recorder.observe_decisions(decisions)

    def flush(self) -> None:
        """Nothing buffered here."""

    def close(self) -> None:
        """Queue every trial still waiting."""
        self.recorder.release()
