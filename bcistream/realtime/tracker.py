"""The stream tracker: where each chunk goes on its stream's sample axis, shared by engine and recorder.

The timing rules of the input contract live here, once:

* **The sample index is the stream's clock.** A chunk without ``seq`` continues where the last one
  ended; timestamps are never used to drop samples (push-per-sample drivers stamp bursts of samples
  with near-equal, sometimes decreasing, timestamps — every sample is kept).
* **Duplicates** exist only where a source can really repeat data: a ``seq`` already seen (Kafka
  re-delivery, a warm-up re-read) or, without ``seq``, a leading run of samples whose timestamps
  AND values equal the tail already received (an LSL inlet re-sending its buffer on recovery).
* **Gaps**: ``seq`` ahead of the next expected index (confirmed by the timestamps when there are
  some), or without ``seq`` a timestamp jump beyond ``gap_tolerance_s`` from the de-jittered line.
* **A corrupt sequence number** (far ahead, not confirmed by the timestamps, or beyond
  ``max_gap_s``) refuses that chunk only; it never becomes the stream's new high-water mark.
* **Source sessions**: a new ``session`` id, or a ``seq`` behind the stream with timestamps later
  than the last ones (a producer restarted from 0), opens a new *segment*: the stream index keeps
  growing (by the gap the timestamps show), the filter restarts, decisions continue.
* **De-jitter**: a least-squares line of timestamp against sample index over the last
  ``dejitter_span_s`` of the segment (what liblsl's dejitter post-processing fits recursively)
  maps marker timestamps to samples and sizes timestamp gaps.
* **Clock steps** (timestamps going back beyond the tolerance, or jumping while ``seq`` says
  contiguous) and **bursts** (near-equal timestamps) are reported and counted, never acted on.

The tracker holds no samples: the owner (engine or recorder) passes what it needs and reports
what the tracker finds through ``report`` (the recorder passes ``None``: the engine reports the
same facts once).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bcistream.data.contract import check_plausible_volts
from bcistream.realtime.config import EngineConfig
from bcistream.realtime.protocols import Chunk
from bcistream.realtime.streams import PendingCue, StreamState

__all__ = ["Placement", "StreamTracker", "dejitter_fit"]

#: ``report(kind, stream, size, reason, detail)``: how the tracker's findings reach events/counters.
Report = Callable[[str, StreamState, int, str, str], None]


@dataclass(frozen=True)
class Placement:
    """Where a chunk's samples go.

    Attributes
    ----------
    skip : int
        Leading samples already received (dropped as duplicates).
    start : int
        Stream index of the first kept sample.
    gap : int
        Samples missing before ``start`` (0: contiguous).
    restart : bool
        The source restarted (new session, or its sequence began again): a new segment.
    """

    skip: int
    start: int
    gap: int
    restart: bool = False


def dejitter_fit(idx: np.ndarray, ts: np.ndarray) -> tuple[float, float, float] | None:
    """Least-squares line ``ts ≈ t0 + slope * (idx - i0)`` over the finite timestamps.

    Returns ``(i0, t0, slope)`` (``i0`` the mean index, so the fit is well conditioned), or ``None``
    with fewer than two finite timestamps or a degenerate (non-positive) slope.
    """
    ok = np.isfinite(ts)
    if ok.sum() < 2:
        return None
    x = idx[ok].astype(np.float64)
    y = ts[ok]
    i0, t0 = float(x.mean()), float(y.mean())
    dx = x - i0
    den = float(dx @ dx)
    if den <= 0:
        return None
    slope = float(dx @ (y - t0)) / den
    if not slope > 0:
        return None
    return i0, t0, slope


class StreamTracker:
    """The timing and placement rules (module docstring) for the streams of one consumer.

    Parameters
    ----------
    sfreq : float
        Nominal sampling rate of the streams (Hz).
    gap_tolerance_s : float
        Timestamp jitter tolerated before a jump counts as missing samples or a clock step.
    max_gap_s : float
        A ``seq`` jump larger than this (without timestamps to confirm it) is a corrupt chunk.
    dejitter_span_s : float
        Span of the de-jitter fit.
    unit_check_s : float
        Samples (seconds) of each stream whose unit is undeclared that are checked for
        plausibility as volts (`bcistream.data.contract.check_plausible_volts`); 0 turns it off.
        Less than a window, so no decision is ever made on unchecked data.
    cue_margin : int
        A marker placed by timestamp is resolved once this many samples after it have arrived, so
        the de-jitter line is fitted on both sides of it (interpolated, not extrapolated from a
        burst at the edge). Less than the cue's window, so it costs no latency.
    report : callable, optional
        Receives findings (``kind, stream, size, reason, detail``).
    """

    def __init__(self, sfreq: float, *, gap_tolerance_s: float = 0.1, max_gap_s: float = 3600.0,
                 dejitter_span_s: float = 10.0, unit_check_s: float = 1.0, cue_margin: int = 0,
                 report: Report | None = None) -> None:
        self.sfreq = float(sfreq)
        self.tol_s = float(gap_tolerance_s)
        self.max_gap = int(round(max_gap_s * sfreq))
        self.span = max(2, int(round(dejitter_span_s * sfreq)))
        self.unit_samples = int(round(unit_check_s * sfreq))
        self.cue_margin = int(cue_margin)
        self._report = report

    @classmethod
    def from_config(cls, sfreq: float, config: EngineConfig, window: int, report: Report | None = None
                    ) -> StreamTracker:
        """The tracker of an engine with ``config`` (the recorder uses the same, quiet)."""
        return cls(sfreq, gap_tolerance_s=config.gap_tolerance_s, max_gap_s=config.max_gap_s,
                   unit_check_s=config.unit_check_s, cue_margin=window // 2,
                   dejitter_span_s=(window + round(config.swap_preroll_s * sfreq)) / sfreq, report=report)

    def report(self, kind: str, st: StreamState, size: int = 0, reason: str = "", detail: str = "") -> None:
        """Pass a finding to the owner (no-op for a quiet tracker)."""
        if self._report is not None:
            self._report(kind, st, int(size), reason, detail)

    # ------------------------------------------------------------------ placement
    def place(self, st: StreamState, ch: Chunk,
              recent: Callable[[int], tuple[np.ndarray, np.ndarray] | None] | None = None
              ) -> Placement | str | None:
        """Where the samples of a well-formed chunk go.

        Parameters
        ----------
        st : StreamState
        ch : Chunk
            Shape already checked (`bcistream.realtime.placement.check_chunk`).
        recent : callable, optional
            ``recent(k)`` -> the stream's last ``k`` raw samples ``(C, k)`` and their timestamps,
            or ``None``; used to recognise a re-sent overlap of a stream without ``seq``.

        Returns
        -------
        Placement, str or None
            ``None``: every sample was already received. A string: the chunk is corrupt (the
            reason, e.g. ``"seq-outlier"``); refuse it without breaking the stream.
        """
        n = ch.data.shape[1]
        ts = ch.timestamps
        t0 = None if ts is None else float(ts[0])
        if st.fresh:
            st.session = ch.session
            return Placement(0, 0 if ch.seq is None else int(ch.seq), 0)
        last = st.last_ts if st.last_ts is not None and st.last_ts == st.last_ts else None
        if ch.session is not None and ch.session != st.session:
            s = None if ch.seq is None else int(ch.seq) - st.shift
            if s is None or not self.continues(st.index, last, s, t0):
                return self._restart(st, ch, t0, last, f"new source session {ch.session!r}")
            # A new producer run that carries on the stream's sequence and clock: same segment.
            if st.session is not None:
                st.past_shifts[st.session] = st.shift
            st.session = ch.session
        if ch.seq is not None:
            s = int(ch.seq) - st.shift
            verdict = self.seq_verdict(st.index, last, s, t0)
            if verdict == "next":
                self._clock(st, t0, last, contiguous=True)
                return Placement(0, s, 0)
            if verdict == "restart":
                return self._restart(st, ch, t0, last, f"sequence back at {ch.seq} with later timestamps")
            if verdict == "behind":
                skip = st.index - s
                return None if skip >= n else Placement(skip, st.index, 0)
            if verdict == "outlier":
                return "seq-outlier"
            return Placement(0, s, s - st.index)
        if t0 is not None and last is not None:
            dt = t0 - last
            if dt > 1.0 / self.sfreq + self.tol_s:
                gap = self._gap_from_time(st, t0)
                if gap > self.max_gap:
                    self.report("clock_step", st, 0, "forward",
                                f"timestamps jumped {dt:.3f} s ahead: treated as a clock step, not a gap")
                    st.clock_steps += 1
                    return Placement(0, st.index, 0)
                if gap > 0:
                    return Placement(0, st.index + gap, gap)
            elif dt <= 0 and recent is not None:
                skip = _overlap(ch, recent)
                if skip:
                    return None if skip >= n else Placement(skip, st.index, 0)
            if dt < -self.tol_s:
                st.clock_steps += 1
                self.report("clock_step", st, 0, "backward",
                            f"timestamps went back {-dt:.3f} s; samples kept (the index is the clock)")
            self._bursts(st, ts, dt)
        return Placement(0, st.index, 0)

    def seq_verdict(self, expected: int, last_ts: float | None, seq: int, t0: float | None) -> str:
        """How a sequence number relates to the next expected one.

        Returns ``"next"`` (contiguous), ``"behind"`` (already received: a re-delivery),
        ``"restart"`` (behind, but with timestamps later than the last ones: the producer began
        again), ``"gap"`` (ahead, confirmed by the timestamps or within ``max_gap_s``) or
        ``"outlier"`` (ahead by more than the timestamps allow: a corrupt chunk). Used by the
        tracker and by sources that keep their own per-stream positions (the Kafka source).
        """
        if seq == expected:
            return "next"
        if seq < expected:
            # Re-delivered data carries the timestamps it had (<= the last seen): later ones are new.
            if t0 is not None and last_ts is not None and t0 > last_ts + 0.5 / self.sfreq:
                return "restart"
            return "behind"
        ahead = seq - expected
        if t0 is not None and last_ts is not None:
            implied = (t0 - last_ts) * self.sfreq - 1.0
            if abs(ahead - implied) > self.tol_s * self.sfreq + 0.05 * max(ahead, implied):
                return "outlier"
        elif ahead > self.max_gap:
            return "outlier"
        return "gap"

    def continues(self, expected: int, last_ts: float | None, seq: int, t0: float | None) -> bool:
        """Whether a chunk of a NEW session carries on the stream (its sequence and clock line up).

        A producer that persisted its counter resumes at (or overlapping, or after a gap from) the
        next expected sample with timestamps on the same line: the same segment. Anything else —
        its sequence from 0, another clock — is a restart. Without timestamps only an exact
        continuation counts.
        """
        if t0 is None or last_ts is None:
            return seq == expected
        want = last_ts + (seq - (expected - 1)) / self.sfreq
        return abs(t0 - want) <= self.tol_s

    def _restart(self, st: StreamState, ch: Chunk, t0: float | None, last: float | None, why: str
                 ) -> Placement:
        gap = 0
        if t0 is not None and last is not None and t0 > last:
            gap = min(max(0, int(round((t0 - last) * self.sfreq)) - 1), self.max_gap)
        start = st.index + gap
        if st.session is not None:
            st.past_shifts[st.session] = st.shift
        if ch.seq is not None:
            st.shift = int(ch.seq) - start
        st.session = ch.session
        st.restarts += 1
        self.report("restart", st, gap, "source-restart", f"{why}: new segment at index {start}")
        return Placement(0, start, gap, restart=True)

    def _clock(self, st: StreamState, t0: float | None, last: float | None, contiguous: bool) -> None:
        if t0 is None or last is None:
            return
        dt = t0 - last
        if dt < -self.tol_s or (contiguous and dt > 1.0 / self.sfreq + self.tol_s):
            st.clock_steps += 1
            self.report("clock_step", st, 0, "backward" if dt < 0 else "forward",
                        f"timestamps stepped {dt:+.3f} s while the sequence is contiguous")

    def _bursts(self, st: StreamState, ts: np.ndarray, dt: float) -> None:
        n = len(ts)
        span = float(ts[-1] - ts[0]) if n > 1 else 0.0
        if dt < 0.5 / self.sfreq or (n > 2 and span < 0.5 * (n - 1) / self.sfreq):
            st.bursts += 1
            if st.bursts == 1:
                self.report("timing", st, n, "bursts",
                            "samples arrive in bursts with near-equal timestamps (a push-per-sample "
                            "driver?): every sample is kept, timestamps are de-jittered")

    def _gap_from_time(self, st: StreamState, t0: float) -> int:
        fit = st.fit
        if fit is not None:
            i0, f0, slope = fit
            return int(round((t0 - f0) / slope + i0)) - st.index
        return int(round((t0 - float(st.last_ts)) * self.sfreq)) - 1

    # ------------------------------------------------------------------ timestamps <-> samples
    def refit(self, st: StreamState, idx: np.ndarray, ts: np.ndarray) -> None:
        """Fit the de-jitter line from the segment's recent ``(index, timestamp)`` pairs."""
        st.fit = dejitter_fit(idx, ts)

    def sample_of(self, st: StreamState, t: float) -> int | None:
        """Index of the sample at source time ``t`` on the de-jittered line.

        ``None`` until that sample and ``cue_margin`` samples after it have arrived. Needs a fit
        (`refit`); a time older than what was kept maps before it (the cue will be reported as too
        late by the caller).
        """
        fit = st.fit
        if st.fresh or fit is None or not math.isfinite(t):
            return None
        i0, f0, slope = fit
        pos = (t - f0) / slope + i0
        if pos > st.index - 0.5 - self.cue_margin:
            return None
        return int(math.floor(pos + 0.5))

    def cue_sample(self, st: StreamState, cue: PendingCue) -> int | None:
        """Resolve a pending cue's stream index (``None``: not yet; keep it pending)."""
        if cue.sample is not None:
            return cue.sample
        if cue.seq is not None:
            # A stream whose chunks name no session takes its markers' session as its own.
            if cue.session is None or cue.session == st.session or (st.session is None
                                                                    and not st.past_shifts):
                return cue.seq - st.shift
            shift = st.past_shifts.get(cue.session)
            return None if shift is None else cue.seq - shift
        if cue.timestamp is None:
            return None
        return self.sample_of(st, cue.timestamp)

    # ------------------------------------------------------------------ units
    def check_units(self, st: StreamState, data: np.ndarray, where: str, fix: str) -> bool | None:
        """Plausibility of the first ``unit_check_s`` of an undeclared stream.

        Returns ``None`` while samples are being gathered, then True (plausible; the stream is
        never checked again) or False (refused: ``st.unit_error`` holds the one-line message).
        """
        if st.units_ok is not None:
            return st.units_ok
        if self.unit_samples <= 0:
            st.units_ok = True
            return True
        st.unit_buf.append(np.asarray(data))
        st.unit_n += data.shape[1]
        if st.unit_n < self.unit_samples:
            return None
        verdict = check_plausible_volts(np.concatenate(st.unit_buf, axis=1), where, fix)
        st.unit_buf = []
        st.units_ok = verdict.ok
        if not verdict.ok:
            st.unit_error = verdict.message
        return st.units_ok


def _overlap(ch: Chunk, recent: Callable[[int], tuple[np.ndarray, np.ndarray] | None]) -> int:
    """Leading samples of ``ch`` that repeat the stream's tail exactly (timestamps and values)."""
    ts = np.asarray(ch.timestamps, dtype=np.float64)
    n = len(ts)
    got = recent(n + 1)
    if got is None:
        return 0
    raw, stamps = got
    m = len(stamps)
    for j in np.flatnonzero(stamps == ts[0]):
        k = m - int(j)  # the overlap must run to the end of what was received
        if k <= n and np.array_equal(stamps[j:], ts[:k]) and np.array_equal(raw[:, j:], ch.data[:, :k]):
            return k
    return 0
