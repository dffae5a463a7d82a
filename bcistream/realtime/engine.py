"""The streaming engine: chunks of many streams in, decisions out; pure computation, no I/O.

Per batch: markers are mapped through the model profile's marker map and chunks are placed on
their stream's sample axis by the stream tracker (duplicates, gaps, source restarts, corrupt
sequence numbers, the unit check of undeclared streams; `bcistream.realtime.intake`), then
grouped by length and advanced by the model's `StreamingDecoder` (compiled from the fitted pipeline
by `bcistream.decoders.compile_streaming`): projected (CSP decoders project before filtering, the
spatial filter commutes with the temporal one), filtered causally with the pipeline's own filter
and summed into running sums of per-sample moments, so the features of any window come from a
difference of two ring entries. Due windows of all streams are classified in ONE call through the
`Classifier` (`bcistream.realtime.classification`; pending cues: `bcistream.realtime.cues`).
See docs/engine.md.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.contract import MarkerMap
from bcistream.realtime.classification import Classification, UnknownVersionHook
from bcistream.realtime.compute import advance
from bcistream.realtime.config import EngineConfig
from bcistream.realtime.cues import Cues
from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.realtime.intake import CORRUPT, Intake
from bcistream.realtime.model import InProcessClassifier, Model, load_model
from bcistream.realtime.placement import check_chunk, split_piece, split_rounds
from bcistream.realtime.protocols import Batch, Chunk, Classifier
from bcistream.realtime.records import Decision
from bcistream.realtime.streams import StreamPool, StreamState
from bcistream.realtime.swap import rebuild_streams
from bcistream.realtime.tracker import Placement, StreamTracker
from bcistream.realtime.triggers import first_hop, hop_end

__all__ = ["Engine", "EngineConfig"]

#: Longer chunks are split into pieces of at most this many samples (bounded work per group).
MAX_PIECE = 256


class Engine(Intake, Cues, Classification):
    """Decode many streams with one fitted pipeline; see the module docstring.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted pipeline of a registered decoder (`bcistream.decoders.make_decoder`).
    version : str
        Its model version (named by every decision).
    config : EngineConfig, optional
    classifier : Classifier, optional
        ``None``: the pipeline's own classifier in-process (replaced on `swap_model`). A given
        classifier (e.g. remote) is kept across swaps; it must hold the engine's version.
    on_unknown_version : callable, optional
        Called with the classifier's current version when it refuses the engine's version; may
        return ``(pipeline, version)`` to swap to (the batch is then retried once) or ``None``.
    """

    def __init__(self, pipeline: Pipeline, version: str = "0", config: EngineConfig | None = None,
                 classifier: Classifier | None = None,
                 on_unknown_version: UnknownVersionHook | None = None) -> None:
        self.config = config or EngineConfig()
        self.model: Model = load_model(pipeline, version)
        self._own_classifier = classifier is None
        self.classifier: Classifier = classifier or InProcessClassifier(self.model.decoder,
                                                                        self.model.version)
        self.on_unknown_version = on_unknown_version
        prof = self.model.profile
        self.sfreq, self.window = prof.sfreq, prof.window_samples
        self.offset = prof.offset_samples
        self.n_channels = prof.n_channels
        self.hop = self.config.hop_s * self.sfreq
        self.preroll = int(round(self.config.swap_preroll_s * self.sfreq))
        raw_ring = self.window + self.preroll
        ring = max(self.window + int(round(self.config.history_s * self.sfreq)), raw_ring) + MAX_PIECE
        (n_signals, n_state), n_moments = self.model.decoder.state_shape()
        self.pool = StreamPool(self.n_channels, n_signals, n_state, ring, raw_ring, n_moments=n_moments)
        self.streams: dict[str, StreamState] = {}
        self.events = EventQueue()
        if self.config.unit_check_s * self.sfreq > self.window:
            raise ValueError(f"unit_check_s ({self.config.unit_check_s} s) must not exceed the window "
                             f"({self.window / self.sfreq:g} s): no decision may use unchecked samples")
        self.tracker = StreamTracker.from_config(self.sfreq, self.config, self.window, report=self._track)
        self.marker_map = MarkerMap.from_profile(prof)
        #: Marker values that map to no class (normalised text -> count); each reported once.
        self.unmapped_markers: dict[str, int] = {}
        self._lock = threading.RLock()
        self._hops = "hop" in self.config.triggers
        self._cues = "cue" in self.config.triggers
        self._stats = {"chunks": 0, "samples_in": 0, "decisions": 0, "hop_decisions": 0,
                       "cue_decisions": 0, "gaps": 0, "gap_samples": 0, "duplicate_samples": 0,
                       "refused": 0, "errors": 0, "swaps": 0, "cues_lost": 0, "classifier_errors": 0,
                       "restarts": 0, "clock_steps": 0, "timing_bursts": 0, "markers_unmapped": 0,
                       "markers_rejected": 0, "streams_refused_units": 0}
        self.refused_by_reason: dict[str, int] = {}

    # ------------------------------------------------------------------ public surface
    @property
    def version(self) -> str:
        """The model version in use."""
        return self.model.version

    def stats(self) -> dict[str, object]:
        """Counters for the live view (monotonic, except ``streams`` and ``model_version``)."""
        with self._lock:
            out: dict[str, object] = dict(self._stats)
            out["streams"] = len(self.streams)
            out["model_version"] = self.model.version
            out["refused_by_reason"] = dict(self.refused_by_reason)
            out["unmapped_markers"] = dict(self.unmapped_markers)
            return out

    def close_stream(self, stream_id: str) -> int:
        """The stream has ended: report its pending cues as lost, then forget it (slot reused).

        Returns the number of cues reported (``cue_lost`` events with reason ``"stream-ended"``,
        counted in ``cues_lost``): cues whose window needed samples the stream never delivered.
        """
        with self._lock:
            st = self.streams.pop(stream_id, None)
            if st is None:
                return 0
            n = self._end_cues(st)
            self.pool.release(st.slot)
            return n

    def flush_pending(self, reason: str = "stream-ended") -> int:
        """Report every still-pending cue of every stream as lost (the run or its input ended).

        Each becomes a ``cue_lost`` event with ``reason`` (``"stream-ended"``: the input ran out;
        ``"run-stopped"``: the run was stopped while it went on) and is counted in ``cues_lost``;
        the streams themselves stay open. Returns the number of cues reported.
        """
        with self._lock:
            return sum(self._end_cues(st, reason) for st in self.streams.values())

    def swap_model(self, pipeline: Pipeline, version: str) -> None:
        """Replace the model between two batches; every stream keeps running.

        The filter state of each stream is rebuilt from its recent raw samples with the new model's
        streaming decoder (exact when the stream's current segment is within the kept history,
        otherwise after ``swap_preroll_s`` of pre-roll; see docs/engine.md). The new model may be
        another decoder (another state shape). Thread-safe: waits for
        a running `process` to finish.

        Raises
        ------
        ProfileError
            The new model is not fitted or its profile (channels, rate, window) differs; the old
            model keeps running.
        """
        new = load_model(pipeline, version)
        self.model.profile.check_compatible(new.profile)
        with self._lock:
            old = self.model.version
            (n_signals, n_state), n_moments = new.decoder.state_shape()
            if self.pool.state_shape() != ((n_signals, n_state), n_moments):
                self.pool.reshape(n_signals, n_state, n_moments)
            rebuild_streams(self.pool, list(self.streams.values()), new, self.window, self.preroll)
            self.model = new
            self.offset = new.profile.offset_samples
            self.marker_map = MarkerMap.from_profile(new.profile)
            if self._own_classifier:
                self.classifier = InProcessClassifier(new.decoder, new.version)
            self._stats["swaps"] += 1
            self.events.append(EngineEvent("swap", None, detail=f"model {old} -> {new.version}"))

    def process(self, batch: Batch) -> list[Decision]:
        """Take one batch of chunks and markers; return the decisions that became due.

        Markers are applied before chunks. Never raises for bad data: refused chunks, gaps and
        per-stream errors are reported in `events`.
        """
        with self._lock:
            now = time.monotonic()
            due: list[tuple] = []
            parts: list[tuple[np.ndarray, np.ndarray]] = []
            for marker in batch.markers:
                try:
                    self._marker(marker, now, due)
                except (TypeError, ValueError) as exc:  # a malformed marker costs only itself
                    self._stats["errors"] += 1
                    self._event("error", None, reason=type(exc).__name__,
                                detail=f"bad marker {marker!r}: {exc}")
            if due:
                parts.append(self._powers(due))
            start = len(due)
            # Powers are taken after each round: a later round may overwrite the ring.
            for chunks in split_rounds(batch.chunks, MAX_PIECE):
                while chunks:
                    chunks = self._round(chunks, due)  # returns the rest of chunks cut to MAX_PIECE
                    if len(due) > start:
                        parts.append(self._powers(due[start:]))
                        start = len(due)
            if not due:
                return []
            return self._decide(due, np.concatenate([p[0] for p in parts]),
                                np.concatenate([p[1] for p in parts]))

    # ------------------------------------------------------------------ streams and markers
    def _stream(self, stream_id: str) -> StreamState:
        st = self.streams.get(stream_id)
        if st is None:
            st = StreamState(stream_id=stream_id, slot=self.pool.take())
            self.streams[stream_id] = st
        return st

    def _event(self, kind: str, st: StreamState | None, size: int = 0, reason: str = "",
               detail: str = "") -> None:
        self.events.append(EngineEvent(kind, None if st is None else st.stream_id, int(size), reason, detail))

    def _refuse(self, st: StreamState, reason: str, n: int, detail: str, breaks: bool = True) -> None:
        self._stats["refused"] += 1
        self.refused_by_reason[reason] = self.refused_by_reason.get(reason, 0) + 1
        st.refused += 1
        if breaks and not st.fresh:
            st.broken = True
        self._event("refused", st, n, reason, detail)

    # ------------------------------------------------------------------ chunks
    def _round(self, chunks: list[Chunk], due: list[tuple]) -> list[Chunk]:
        # Per length: the items, and the indices of those needing gap/restart handling.
        groups: dict[int, tuple[list[tuple], list[int]]] = {}
        streams, n_ch = self.streams, self.n_channels
        rest: list[Chunk] = []
        for ch in chunks:
            st = streams.get(ch.stream_id) or self._stream(str(ch.stream_id))
            data = ch.data
            try:
                # Fast path: a well-formed chunk that continues its healthy stream exactly.
                seq = ch.seq
                if (seq is not None and seq == st.index + st.shift and st.units_ok and not st.fresh
                        and not st.broken and (ch.session is None or ch.session == st.session)
                        and type(data) is np.ndarray and data.ndim == 2 and data.shape[0] == n_ch
                        and data.dtype.kind == "f"):
                    n = data.shape[1]
                    ts = ch.timestamps
                    if n and n <= MAX_PIECE and (ts is None or (type(ts) is np.ndarray and ts.shape == (n,))):
                        group = groups.get(n)
                        if group is None:
                            group = groups[n] = ([], [])
                        group[0].append((st, data, ts, st.index, 0, ch.arrival))
                        continue
                reason = check_chunk(ch, n_ch)
                if reason is None and ch.data.shape[1] > MAX_PIECE:
                    ch, tail = split_piece(ch, MAX_PIECE)
                    rest.append(tail)
                    data = ch.data
                if reason is not None:
                    n = data.shape[-1] if isinstance(data, np.ndarray) and data.ndim else 0
                    self._refuse(st, reason, n, f"refused chunk: {reason} (shape "
                                 f"{getattr(data, 'shape', None)}, dtype {getattr(data, 'dtype', None)})")
                    continue
                if st.units_ok is False:  # refused for its unit: counted, reported once
                    self.refused_by_reason["units"] = self.refused_by_reason.get("units", 0) + 1
                    self._stats["refused"] += 1
                    continue
                placed = self.tracker.place(st, ch, None if ch.seq is not None else
                                            lambda k, st=st: self._recent(st, k))
                if placed is None:
                    self._dup(st, data.shape[1])
                    continue
                if not isinstance(placed, Placement):
                    self._refuse(st, placed, data.shape[1], CORRUPT.get(placed, placed), breaks=False)
                    continue
                skip, start, gap = placed.skip, placed.start, placed.gap
                if placed.restart:
                    st.broken = True  # a new segment: the filter restarts whatever the gap policy
                    if gap:
                        self._stats["gaps"] += 1
                        self._stats["gap_samples"] += gap
                        st.gaps += 1
                        self._event("gap", st, gap, "restart", f"source restarted: {gap} samples missing "
                                    f"before index {start}")
                        gap = 0
                if st.units_ok is None and not self._units(st, ch, data[:, skip:]):
                    continue
                if skip:
                    self._dup(st, skip)
                    data = data[:, skip:]
                ts = None if ch.timestamps is None else np.asarray(ch.timestamps[skip:], dtype=np.float64)
                items, slow = groups.setdefault(data.shape[1], ([], []))
                slow.append(len(items))
                items.append((st, data, ts, start, gap, ch.arrival))
            except Exception as exc:  # noqa: BLE001 - one stream's failure must not stop the others
                self._stream_error(st, exc)
        for items, slow in groups.values():
            try:
                self._group(items, slow, due)
            except Exception as exc:  # noqa: BLE001
                for item in items:
                    self._stream_error(item[0], exc)
        return rest

    def _dup(self, st: StreamState, n: int) -> None:
        self._stats["duplicate_samples"] += n
        self._event("duplicate", st, n, "seen", f"{n} samples already seen were dropped")

    def _stream_error(self, st: StreamState, exc: Exception) -> None:
        self._stats["errors"] += 1
        st.broken = True
        self._event("error", st, reason=type(exc).__name__, detail=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ vectorised work
    def _restart(self, st: StreamState, start: int) -> None:
        """Filter from zero state at ``start``; no window may reach before it."""
        st.seg_start = st.p_base = st.valid_from = start
        st.fresh = st.broken = False
        st.clear_raw()
        st.hop_k, st.hop_next = first_hop(start, self.window, self.hop)

    def _group(self, items: list[tuple], slow: list[int], due: list[tuple]) -> None:
        n = items[0][1].shape[1]
        # concatenate + reshape: np.stack would index every array in Python.
        X = np.concatenate([it[1] for it in items]).reshape(len(items), self.n_channels, n)
        Y, ok = self.model.decoder.project(X)
        if not ok.all():
            for i in np.flatnonzero(~ok):
                self._refuse(items[i][0], "non-finite", n, "refused chunk: NaN or Inf samples")
            keep = np.flatnonzero(ok)
            if len(keep) == 0:
                return
            slow = [j for j, i in enumerate(keep) if i in set(slow)]
            items = [items[i] for i in keep]
            X, Y = X[keep], Y[keep]
        G = len(items)
        resets = np.zeros(G, dtype=bool)
        starts = [it[3] for it in items]
        for i in slow:
            st, _data, _ts, start, gap, _arrival = items[i]
            if not (gap or st.fresh or st.broken):
                continue
            if gap:
                self._stats["gaps"] += 1
                self._stats["gap_samples"] += gap
                st.gaps += 1
                self._event("gap", st, gap, "missing", f"{gap} samples missing before index {start}")
                if self.config.on_gap != "reset":
                    starts[i] = st.index
                    st.shift += gap  # later seq numbers map onto the bridged indices
            if st.fresh or st.broken or (gap and self.config.on_gap == "reset"):
                self._restart(st, starts[i])
                resets[i] = True
        T = None
        ts_list = [it[2] for it in items]
        missing = sum(1 for ts in ts_list if ts is None)
        if missing == 0:
            T = np.concatenate(ts_list).reshape(G, n)
        elif missing < G:
            T = np.full((G, n), np.nan)
            for i, ts in enumerate(ts_list):
                if ts is not None:
                    T[i] = ts
        slots = np.fromiter((it[0].slot for it in items), dtype=np.int64, count=G)
        advance(self.pool, self.model.decoder, slots, np.asarray(starts, dtype=np.int64), Y, T, resets)
        self._stats["chunks"] += G
        self._stats["samples_in"] += G * n
        hops, win, hop, keep = self._hops, self.window, self.hop, self.pool.raw_ring
        lasts = T[:, -1].tolist() if T is not None else [None] * G
        for it, start, x, last in zip(items, starts, X, lasts, strict=True):
            st = it[0]
            end = st.index = start + n
            # Raw history for swaps: views of X, trimmed to what the rebuild needs (inlined: hot).
            hist = st.history
            hist.append(x)
            st.history_n += n
            while st.history_n - hist[0].shape[1] >= keep:
                st.history_n -= hist.popleft().shape[1]
            if it[2] is not None:
                st.last_ts = last
            if hops and st.hop_next <= end:
                while st.hop_next <= end:
                    e = st.hop_next
                    if e - win >= st.valid_from:
                        due.append((st, "hop", e - win, e, None, it[5]))
                    st.hop_k += 1
                    st.hop_next = hop_end(st.hop_k, hop)
            if st.cues:
                self._due_cues(st, it[5], due)
