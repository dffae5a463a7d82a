"""LSL source: many EEG inlets pulled by ONE thread into numpy, plus cue-marker inlets.

The adapter applies the edge of the input contract (`bcistream.data.contract`): channels in the
profile's order, samples in volts from the channels' declared units (``desc/channels/channel/unit``,
else the profile's ``units``; chunks of streams that declare neither are marked undeclared and the
engine checks their first second), clock-corrected timestamps, and marker values passed on as sent
(int32 codes, strings) with their timestamps. It assigns no sequence numbers and drops nothing:
LSL has none, so the engine's stream tracker counts samples, finds gaps in the timestamps and
recognises an inlet's re-sent overlap by value (`bcistream.realtime.tracker`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bcistream.data.contract import declared_volts_per_unit
from bcistream.data.profiles import Profile
from bcistream.realtime.protocols import Batch, Chunk, Marker
from bcistream.streamer.lsl_checks import channel_order
from bcistream.streamer.lsl_limits import ensure_open_files
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
    lost: int = 0
    polls: int = 0
    #: Seconds spent pulling from liblsl and building chunks (clock checks and scaling included):
    #: where a poll's time goes (`make bench` reports them per stage).
    pull_s: float = 0.0
    convert_s: float = 0.0
    events: deque = field(default_factory=lambda: deque(maxlen=100))


class _RawPull:
    """One inlet's pull into its preallocated buffers: two liblsl calls, nothing allocated.

    ``lsl_samples_available`` first (an inlet without data costs one C call, no buffers, no
    exception machinery), then ``lsl_pull_chunk_*`` with arguments built once. pylsl's own
    ``pull_chunk`` allocates a timestamp array, a ctypes view and a numpy view on every call,
    which at thousands of inlets per poll is most of the source's time.
    """

    def __init__(self, inlet: Any, buf: np.ndarray, ts: np.ndarray, n_ch: int) -> None:
        import ctypes

        from pylsl import inlet as lsl_inlet
        from pylsl.lib import lib
        from pylsl.util import handle_error

        self._avail = lib.lsl_samples_available
        self._pull = lsl_inlet.fmt2pull_chunk[inlet.channel_format]
        self._handle = handle_error
        self._obj = inlet.obj
        self._err = ctypes.c_int()
        self._args = (inlet.obj, ctypes.c_void_p(buf.ctypes.data), ctypes.c_void_p(ts.ctypes.data),
                      ctypes.c_size_t(buf.size), ctypes.c_size_t(len(ts)), ctypes.c_double(0.0),
                      ctypes.byref(self._err))
        self._n_ch = n_ch

    def __call__(self) -> int:
        """Samples pulled into the buffers (0: nothing there); `pylsl.LostError` when lost."""
        if not self._avail(self._obj):
            return 0
        n = self._pull(*self._args)
        if self._err.value:
            self._handle(self._err.value)
        return int(n) // self._n_ch


class _Stream:
    def __init__(self, sid: str, inlet: Any, order: np.ndarray | None, sfreq: float, n_ch: int,
                 max_chunk: int) -> None:
        self.sid = sid
        self.inlet = inlet
        self.order = order
        self.sfreq = sfreq
        dtype = getattr(inlet, "np_dtype", None) or np.float32
        self.buf = np.empty((max_chunk, n_ch), dtype=dtype)
        self.ts = np.empty(max_chunk, dtype=np.float64)
        self.max_chunk = max_chunk
        # The direct path needs a real pylsl inlet of a numeric format (test doubles use pull_chunk).
        self.raw = (_RawPull(inlet, self.buf, self.ts, n_ch)
                    if getattr(inlet, "np_dtype", None) is not None and hasattr(inlet, "obj") else None)
        self.last_ts: float | None = None
        self.correction = 0.0
        self.corrected_at = -1e9  #: monotonic time of the last estimate (< 0: none yet)
        self.skip_before: float | None = None
        self.scale = 1.0
        self.declared = False  #: units declared (metadata or profile): the engine skips its check
        self.name = sid


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
    marker_timeout : float
        Seconds to look for the marker streams.
    recheck_clock_s : float
        Seconds between two clock-correction reads of an inlet.
    pass_gap_per_stream : float
        Seconds, per inlet, between the starts of two passes over the inlets. liblsl has no way
        to wait on many inlets at once, so each pass asks every inlet; at 1 000 streams unpaced
        passes ran ~800 times a second and asking empty inlets cost ~0.4 of a core. The default
        (5 µs per inlet: 5 ms at 1 000 streams) holds that cost near a tenth of a core and delays a
        chunk by at most one gap (5 µs for one stream).

    Raises
    ------
    UnitError
        A stream's channels declare different units or a unit that is not a voltage.
    OpenFilesError
        More inlets than this process may hold open (liblsl keeps 12 descriptors per inlet; the
        soft limit is raised toward the hard one first, see `bcistream.streamer.lsl_limits`).
    """

    def __init__(self, streams: Sequence[str], profile: Profile, *, markers: bool = True,
                 resolve_timeout: float = 5.0, skip_backlog: bool = False, max_buflen: int = 30,
                 marker_timeout: float = 1.0, recheck_clock_s: float = 5.0,
                 pass_gap_per_stream: float = 5e-6) -> None:
        import pylsl
        from pylsl.lib import lib

        self._pylsl = pylsl
        self._lsl_avail = lib.lsl_samples_available
        self.profile = profile
        self.stats = LslSourceStats()
        self.recheck_clock_s = recheck_clock_s
        if not pass_gap_per_stream >= 0:
            raise ValueError(f"pass_gap_per_stream must be >= 0 seconds, got {pass_gap_per_stream}")
        self._gap_per_stream = pass_gap_per_stream
        self._last_pass = 0.0
        # The backlog is what arrived before the first poll (opening many inlets takes a while).
        self._skip_backlog = skip_backlog
        self._streams: list[_Stream] = []
        self._marker_inlets: list[tuple[_Stream, Any]] = []
        infos = resolve_many(list(streams), resolve_timeout)
        ensure_open_files(len(infos))
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
            units = info.get_channel_units() or []
            scale = declared_volts_per_unit([units[i] for i in order] if order is not None and units
                                            else units)
            if scale is None:
                scale = profile.volts_per_unit  # the profile's units, for amplifier apps that send none
            st.scale, st.declared = (1.0, False) if scale is None else (scale, True)
            if not st.declared:
                log.info("stream %r declares no channel units: its first second is checked for "
                         "plausibility as volts", info.name())
            st.name = info.name()
            self._streams.append(st)
        self._start_clocks(min(resolve_timeout, 2.0))
        if markers:
            self._open_markers(marker_timeout)

    def _open_markers(self, timeout: float) -> None:
        names = [f"name={st.name}{MARKER_SUFFIX}" for st in self._streams]
        found = find_streams(names, timeout)
        ensure_open_files(len(found))
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

    def _start_clocks(self, wait_s: float, batch: int = 200) -> None:
        """First clock corrections of every inlet, estimated ``batch`` inlets at a time.

        liblsl needs ~0.65 s of probes per inlet for its first estimate and ``time_correction``
        blocks until then: asked one by one that was 0.65 s x streams (160 s for 250 streams) with
        the poll loop stalled. A zero-timeout call starts an inlet's estimate; a batch shares one
        deadline (all at once, 2000 inlets' probe threads swamped a 2-core machine). An inlet
        still without an estimate is retried by `_correction` (never blocking).
        """
        missing = 0
        for b in range(0, len(self._streams), batch):
            part = self._streams[b:b + batch]
            for st in part:
                try:
                    st.correction = st.inlet.time_correction(timeout=0.0)
                    st.corrected_at = time.monotonic()
                except Exception:  # noqa: BLE001 - TimeoutError: the estimate has started
                    pass
            deadline = time.monotonic() + wait_s
            for st in part:
                if st.corrected_at > 0:
                    continue
                try:
                    st.correction = st.inlet.time_correction(timeout=max(deadline - time.monotonic(), 0.0))
                    st.corrected_at = time.monotonic()
                except Exception:  # noqa: BLE001 - no estimate yet: retried while polling
                    missing += 1
        if missing:
            log.warning("%d LSL stream(s) have no clock correction yet: their first timestamps are in "
                        "the outlet's clock until it arrives", missing)

    def _correction(self, st: _Stream, now: float) -> float:
        if now - st.corrected_at > self.recheck_clock_s:
            try:
                # Never blocks: liblsl re-estimates in the background and returns the latest value
                # (a vanished outlet must not stall the other streams' polls).
                st.correction = st.inlet.time_correction(timeout=0.0)
                st.corrected_at = now
            except Exception as exc:  # noqa: BLE001  (no estimate yet, outlet away: keep the old one)
                log.debug("time_correction not available for %s: %s", st.sid, exc)
                st.corrected_at = now - self.recheck_clock_s + 0.25  # retry in 0.25 s
        return st.correction

    def _pull_raw(self, st: _Stream) -> tuple[np.ndarray, np.ndarray] | None:
        """(samples x channels view, timestamps view) of what ``st`` had, or None."""
        try:
            if st.raw is not None:
                n = st.raw()
                return (st.buf[:n], st.ts[:n]) if n else None
            view, ts = st.inlet.pull_chunk(timeout=0.0, max_samples=st.max_chunk, dest_obj=st.buf,
                                           as_numpy=True)
        except self._pylsl.LostError:
            self.stats.lost += 1
            return None
        return (view, ts) if len(ts) else None

    def _chunk(self, st: _Stream, view: np.ndarray, ts: np.ndarray, arrival: float, batch: Batch) -> None:
        ts = ts + self._correction(st, arrival)  # a new array: the buffer is reused next poll
        if st.skip_before is not None:
            keep = ts >= st.skip_before
            if not keep.any():
                return
            st.skip_before = None
            view, ts = view[keep], ts[keep]
        n = len(ts)
        data = view[:, st.order].T if st.order is not None else view.T.copy()
        if data.dtype != np.float32:
            data = data.astype(np.float32)
        if st.scale != 1.0:
            data *= st.scale
        # No seq: LSL has none. Every sample is passed on; the engine's tracker places it.
        batch.chunks.append(Chunk(st.sid, data, ts, None, arrival, units_declared=st.declared))
        st.last_ts = float(ts[-1])
        self.stats.chunks += 1
        self.stats.samples += n

    def _pull_all(self, batch: Batch) -> None:
        """Every EEG inlet once: pull those with data (timed), then build their chunks (timed).

        Pulls copy out of liblsl into each stream's own buffers, so all pulls happen first and
        the conversion after, in one pass (``convert_s`` is then what the chunks cost).
        """
        t0 = time.perf_counter()
        got = []
        for st in self._streams:
            pulled = self._pull_raw(st)
            if pulled is not None:
                got.append((st, pulled))
        t1 = time.perf_counter()
        if got:
            arrival = time.monotonic()
            for st, (view, ts) in got:
                self._chunk(st, view, ts, arrival, batch)
        self.stats.pull_s += t1 - t0
        self.stats.convert_s += time.perf_counter() - t1

    def _pull_markers(self, st: _Stream, inlet: Any, batch: Batch) -> None:
        try:
            # One C call for an inlet without markers (the usual case); pull_chunk of a string
            # stream allocates and frees buffers on every call.
            if not self._lsl_avail(inlet.obj):
                return
            values, ts = inlet.pull_chunk(timeout=0.0, max_samples=64)
        except self._pylsl.LostError:
            values, ts = [], []
        for value, stamp in zip(values, ts, strict=False):
            # The value as sent (an int32 code, "769", "T1", a class name): the engine maps it
            # through the model profile; the engine places it on the de-jittered timestamps.
            label = value[0] if len(value) else None
            stamp = float(stamp) + self._correction(st, time.monotonic())
            batch.markers.append(Marker(st.sid, label, timestamp=stamp))
            self.stats.markers += 1

    def poll(self, timeout: float = 0.0) -> Batch:
        """Pull every inlet once (without blocking); repeat until data or ``timeout``."""
        deadline = time.monotonic() + timeout
        batch = Batch()
        if self._skip_backlog:
            self._skip_backlog = False
            now = self._pylsl.local_clock()
            for st in self._streams:
                st.skip_before = now
        gap = self._gap_per_stream * (len(self._streams) + len(self._marker_inlets))
        while True:
            now = time.monotonic()
            wait = self._last_pass + gap - now
            if wait > 0:  # paced: see ``pass_gap_per_stream``
                if now + wait > deadline:
                    time.sleep(max(deadline - now, 0.0))
                    return batch
                time.sleep(wait)
            self._last_pass = time.monotonic()
            self.stats.polls += 1
            self._pull_all(batch)
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
