"""LSL source: many EEG inlets pulled by ONE thread into numpy, plus cue-marker inlets.

Each stream gets a sample counter (``seq``) from its timestamps: a jump beyond the jitter
tolerance (the outlet vanished and came back, or samples were dropped) is reported as a gap and
the counter skips the missing samples, so window positions and cue samples stay on one axis.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bcistream.data.profiles import Profile
from bcistream.realtime.protocols import Batch, Chunk, Marker
from bcistream.streamer.lsl_checks import channel_order
from bcistream.streamer.lsl_resolve import find_streams, resolve_many

__all__ = ["LslSource", "LslSourceStats", "MARKER_SUFFIX"]

log = logging.getLogger(__name__)

#: The marker stream of EEG stream ``NAME`` is called ``NAME-markers`` (replay makes it so).
MARKER_SUFFIX = "-markers"


@dataclass
class LslSourceStats:
    """Counters of an LSL source."""

    chunks: int = 0
    samples: int = 0
    markers: int = 0
    gaps: int = 0
    gap_samples: int = 0
    lost: int = 0
    duplicates: int = 0
    events: deque = field(default_factory=lambda: deque(maxlen=100))


class _Stream:
    def __init__(self, sid: str, inlet: Any, order: np.ndarray | None, sfreq: float, n_ch: int,
                 max_chunk: int) -> None:
        self.sid = sid
        self.inlet = inlet
        self.order = order
        self.sfreq = sfreq
        self.buf = np.empty((max_chunk, n_ch), dtype=np.float32)
        self.max_chunk = max_chunk
        self.next_seq = 0
        self.last_ts: float | None = None
        self.correction = 0.0
        self.corrected_at = -1e9
        self.skip_before: float | None = None
        self.scale = 1.0
        self.name = sid
        self.pending: list[tuple[str | None, float]] = []


class LslSource:
    """EEG chunks and cue markers from LSL (implements `bcistream.realtime.Source`).

    Parameters
    ----------
    streams : sequence of str
        Stream selectors: ``NAME``, ``name=NAME``, ``source_id=ID`` or ``type=EEG``. The stream id
        of the chunks is the selector's value.
    profile : Profile
        The model's profile: rate, channel count and labels are checked against it (streams whose
        labels are in another order are re-ordered by label).
    markers : bool
        Also open ``NAME-markers`` (replay's marker outlet) for each stream when it exists.
    resolve_timeout : float
        Seconds to wait for each stream.
    skip_backlog : bool
        Drop samples older than the first `poll` (a new inlet first gets what the outlet buffered).
    max_buflen : int
        Seconds the inlet buffers when the engine falls behind.
    gap_tolerance_s : float
        Timestamp jitter tolerated before a jump counts as missing samples (amplifiers stamp chunks
        when they push them, so timestamps wobble by a few ms; an outage shows up as a jump).
    """

    def __init__(self, streams: Sequence[str], profile: Profile, *, markers: bool = True,
                 resolve_timeout: float = 5.0, skip_backlog: bool = False, max_buflen: int = 30,
                 marker_timeout: float = 1.0, recheck_clock_s: float = 5.0,
                 gap_tolerance_s: float = 0.1) -> None:
        import pylsl

        self._pylsl = pylsl
        self.profile = profile
        self.stats = LslSourceStats()
        self.recheck_clock_s = recheck_clock_s
        self.gap_tolerance_s = gap_tolerance_s
        # The backlog is what arrived before the first poll (opening many inlets takes a while).
        self._skip_backlog = skip_backlog
        self._streams: list[_Stream] = []
        self._marker_inlets: list[tuple[_Stream, Any]] = []
        infos = resolve_many(list(streams), resolve_timeout)
        max_chunk = max(64, int(profile.sfreq))
        for spec, info in zip(streams, infos, strict=True):
            sid = spec.partition("=")[2] or spec
            inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, recover=True)
            # Resolve results carry no <desc>: the full header (labels, units) comes from the inlet.
            info = inlet.info(timeout=resolve_timeout)
            order = channel_order(info.name(), info.channel_count(), info.nominal_srate(),
                                  info.get_channel_labels(), profile)
            inlet.open_stream(timeout=resolve_timeout)
            st = _Stream(sid, inlet, order, info.nominal_srate(), info.channel_count(), max_chunk)
            st.scale = _volts_per_unit(info.get_channel_units(), order)
            st.name = info.name()
            self._streams.append(st)
        if markers:
            self._open_markers(marker_timeout)

    def _open_markers(self, timeout: float) -> None:
        names = [f"name={st.name}{MARKER_SUFFIX}" for st in self._streams]
        found = find_streams(names, timeout)
        for i, st in enumerate(self._streams):
            if i not in found:
                log.warning("no marker stream %r: stream %r is decoded without cues", names[i][5:], st.sid)
                continue
            inlet = self._pylsl.StreamInlet(found[i], max_buflen=60, recover=True)
            inlet.open_stream(timeout=timeout)
            self._marker_inlets.append((st, inlet))

    @property
    def stream_ids(self) -> list[str]:
        """Ids of the opened EEG streams."""
        return [s.sid for s in self._streams]

    def _correction(self, st: _Stream, now: float) -> float:
        if now - st.corrected_at > self.recheck_clock_s:
            try:
                st.correction = st.inlet.time_correction(timeout=0.5)
            except Exception as exc:  # noqa: BLE001  (timeout while the outlet is away: keep the old one)
                log.debug("time_correction failed for %s: %s", st.sid, exc)
            st.corrected_at = now
        return st.correction

    def _pull(self, st: _Stream, batch: Batch) -> None:
        try:
            view, ts = st.inlet.pull_chunk(timeout=0.0, max_samples=st.max_chunk, dest_obj=st.buf,
                                           as_numpy=True)
        except self._pylsl.LostError:
            self.stats.lost += 1
            return
        n = len(ts)
        if n == 0:
            return
        arrival = time.monotonic()
        ts = ts + self._correction(st, arrival)
        if st.skip_before is not None:
            keep = ts >= st.skip_before
            if not keep.any():
                return
            st.skip_before = None
            view, ts = view[keep], ts[keep]
            n = len(ts)
        if st.last_ts is not None and ts[0] < st.last_ts + 0.5 / st.sfreq:
            # A recovered connection re-sends the outlet's buffer: drop what was already seen.
            keep = ts >= st.last_ts + 0.5 / st.sfreq
            self.stats.duplicates += int(n - keep.sum())
            if not keep.any():
                return
            view, ts = view[keep], ts[keep]
            n = len(ts)
        data = view[:, st.order].T if st.order is not None else view.T.copy()
        if st.scale != 1.0:
            data *= st.scale
        if st.last_ts is not None:
            missing = int(round((ts[0] - st.last_ts) * st.sfreq)) - 1
            if missing > 0 and ts[0] - st.last_ts > 1.0 / st.sfreq + self.gap_tolerance_s:
                st.next_seq += missing
                self.stats.gaps += 1
                self.stats.gap_samples += missing
                self.stats.events.append(("gap", st.sid, missing))
                log.warning("stream %s: gap of %d samples (%.3f s)", st.sid, missing, missing / st.sfreq)
        batch.chunks.append(Chunk(st.sid, data, ts, st.next_seq, arrival))
        st.next_seq += n
        st.last_ts = float(ts[-1])
        self.stats.chunks += 1
        self.stats.samples += n

    def _pull_markers(self, st: _Stream, inlet: Any, batch: Batch) -> None:
        try:
            values, ts = inlet.pull_chunk(timeout=0.0, max_samples=64)
        except self._pylsl.LostError:
            values, ts = [], []
        for value, stamp in zip(values, ts, strict=False):
            label = None if value[0] in ("", "unknown") else value[0]
            st.pending.append((label, float(stamp) + self._correction(st, time.monotonic())))
        if st.last_ts is None:
            return  # no anchor yet: the cues wait for the first samples
        for label, stamp in st.pending:
            # Place the cue on the stream's sample axis from the latest (seq, timestamp) anchor.
            sample = st.next_seq - 1 + int(round((stamp - st.last_ts) * st.sfreq))
            batch.markers.append(Marker(st.sid, label, sample=sample, timestamp=stamp))
            self.stats.markers += 1
        st.pending.clear()

    def poll(self, timeout: float = 0.0) -> Batch:
        """Pull every inlet once (without blocking); repeat until data or ``timeout``."""
        deadline = time.monotonic() + timeout
        batch = Batch()
        if self._skip_backlog:
            self._skip_backlog = False
            now = self._pylsl.local_clock()
            for st in self._streams:
                st.skip_before = now
        while True:
            for st in self._streams:
                self._pull(st, batch)
            for st, inlet in self._marker_inlets:
                self._pull_markers(st, inlet, batch)
            if batch.chunks or batch.markers or time.monotonic() >= deadline:
                return batch
            time.sleep(0.0002)

    def resume_point(self) -> None:
        """LSL has no replay: nothing to commit."""
        return None

    def commit(self, point: Any) -> None:
        """Nothing to acknowledge on LSL."""

    def close(self) -> None:
        """Close every inlet."""
        for st in self._streams:
            st.inlet.close_stream()
        for _, inlet in self._marker_inlets:
            inlet.close_stream()
        self._streams.clear()
        self._marker_inlets.clear()



_UNITS = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
          "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6}


def _volts_per_unit(units: Sequence[str | None] | None, order: np.ndarray | None) -> float:
    """Scale to volts (the profile's unit) from the stream's channel units; volts when unknown."""
    if not units:
        return 1.0
    picked = [units[i] for i in order] if order is not None else list(units)
    scales = {_UNITS.get(str(u).strip().lower()) for u in picked}
    if len(scales) != 1 or None in scales:
        if any(u for u in picked):
            log.warning("unrecognised or mixed channel units %s: treating samples as volts", set(picked))
        return 1.0
    return scales.pop()
