"""Fetched chunk messages → `Chunk` objects, with every stream's position (sequence, session, clock).

The fast path (`bcistream.streamer.kafka_batch.decode_batch`) takes whole runs of messages that
continue their stream exactly. Everything else goes message by message (`ChunkIntake`'s slow path):
the shape and rate are checked against the model, the ``units`` header gives the scale to volts,
and the chunk's sequence number is judged against its stream (`StreamTracker.seq_verdict`) — each
gap, duplicate, restart and outlier is counted or reported, each refused message dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bcistream.data.contract import UnitError, to_volts, volts_per_unit
from bcistream.realtime.protocols import Chunk
from bcistream.realtime.records import Decision
from bcistream.realtime.tracker import StreamTracker
from bcistream.streamer.kafka_batch import Run, decode_batch
from bcistream.streamer.kafka_stats import KafkaSourceStats
from bcistream.streamer.wire import WireError, decode_chunk

__all__ = ["ChunkIntake", "coalesce"]


class ChunkIntake:
    """Chunks of fetched records, and the position of every stream they belong to.

    Parameters
    ----------
    stats : KafkaSourceStats
        Messages, bytes, gaps, duplicates, restarts and sequence outliers are counted here.
    default_scale : float or None
        Volts per unit of chunks without a ``units`` header (``None``: undeclared).
    reject : callable
        ``f(record, reason, detail)`` dead-letters a refused message.
    on_restart : callable
        ``f(stream_id)`` when a stream's producer began again.

    Attributes
    ----------
    next_seq : dict of str to int
        Each stream's next expected sequence number.
    stream_tp : dict of str to TopicPartition
        The partition each stream was last read from (only streams of owned partitions).
    last_ts : dict of str to float
        Each stream's latest sample timestamp so far (seconds, the producer's clock).
    """

    def __init__(self, stats: KafkaSourceStats, default_scale: float | None, *,
                 reject: Callable[[Any, str, str], None], on_restart: Callable[[str], None]) -> None:
        self.stats = stats
        self._default_scale = default_scale
        self._reject = reject
        self._on_restart = on_restart
        self.next_seq: dict[str, int] = {}
        self.stream_tp: dict[str, Any] = {}
        self._session: dict[str, str | None] = {}
        self.last_ts: dict[str, float] = {}
        self._replayed: dict[str, int] = {}
        self._scales: dict[bytes, float] = {}
        self._rules: dict[float, StreamTracker] = {}
        self._steps: dict[tuple[int, float], np.ndarray] = {}

    def forget(self, revoked: set) -> None:
        """The streams of ``revoked`` partitions are no longer this source's."""
        for sid in [s for s, tp in self.stream_tp.items() if tp in revoked]:
            # Markers already emitted stay emitted: the engine still holds them if it gets the
            # stream back, and re-sending them would decide those cues twice.
            del self.stream_tp[sid]

    def replayed(self, decision: Decision) -> bool:
        """True when ``decision`` was completed by re-read data: the previous owner published it."""
        return decision.window_end <= self._replayed.get(decision.stream_id, -1)

    def take(self, tp: Any, records: list, arrival: float, out: list[Chunk], *, warm_limit: int | None,
             n_channels: int | None, sfreq: float | None) -> None:
        """Chunks of one partition's fetched records: whole runs at once where the batch allows.

        `decode_batch` decodes the records with one numpy operation when they share one layout;
        a run that is not the plain continuation of its stream (first after a gap, a restart, a
        re-delivery, an outlier) and every batch it refuses go message by message, where each
        case is counted, reported or dead-lettered.

        Parameters
        ----------
        tp : TopicPartition
        records : list of ConsumerRecord
        arrival : float
            ``time.monotonic()`` of the poll.
        out : list of Chunk
            The chunks are appended here.
        warm_limit : int or None
            Records of ``tp`` below this offset are re-read warm-up data.
        n_channels, sfreq : int or float, optional
            What the model expects; chunks that differ are dead-lettered.
        """
        runs = decode_batch(records, n_channels, sfreq)
        if runs is None:
            for rec in records:
                chunk = self._take_chunk(tp, rec, arrival, warm_limit, n_channels, sfreq)
                if chunk is not None:
                    out.append(chunk)
            return
        by_offset: dict[int, Any] | None = None
        for run in runs:
            chunk = self._take_run(tp, run, arrival, warm_limit)
            if chunk is not None:
                out.append(chunk)
                continue
            by_offset = by_offset or {rec.offset: rec for rec in records}
            for off in run.offsets:
                chunk = self._take_chunk(tp, by_offset[int(off)], arrival, warm_limit, n_channels, sfreq)
                if chunk is not None:
                    out.append(chunk)

    def _take_run(self, tp: Any, run: Run, arrival: float, limit: int | None) -> Chunk | None:
        """A run that continues its stream exactly (None: take its messages one by one)."""
        sid, n = run.stream_id, run.n_samples
        expected = self.next_seq.get(sid)
        if expected is not None and (run.seq != expected or run.session != self._session.get(sid)):
            return None
        self.stats.messages += run.n_messages
        self.stats.bytes += run.n_bytes
        self.next_seq[sid] = run.seq + n
        self._session[sid] = run.session
        self.last_ts[sid] = max(self.last_ts.get(sid, -np.inf), float(run.timestamps[-1]))
        self.stream_tp[sid] = tp
        if limit is not None:
            below = np.flatnonzero(run.offsets < limit)
            if len(below):
                per = n // run.n_messages
                self._replayed[sid] = max(self._replayed.get(sid, -1), run.seq + (int(below[-1]) + 1) * per)
        scale = self._default_scale
        data = run.data if scale is None or scale == 1.0 else to_volts(run.data, scale)
        return Chunk(sid, data, run.timestamps, run.seq, arrival, run.session, scale is not None)

    def _take_chunk(self, tp: Any, rec: Any, arrival: float, limit: int | None,
                    n_channels: int | None, sfreq: float | None) -> Chunk | None:
        self.stats.messages += 1
        self.stats.bytes += len(rec.value or b"")
        try:
            if rec.key is None:
                raise WireError("message has no key (the stream id)")
            sid = rec.key.decode("utf-8")
            wc = decode_chunk(rec.value)
            n_ch, n = wc.data.shape
            if n_channels is not None and n_ch != n_channels:
                raise WireError(f"stream {sid!r} has {n_ch} channels, the model expects {n_channels}")
            if sfreq is not None and abs(wc.sfreq - sfreq) > 1e-6:
                raise WireError(f"stream {sid!r} is sampled at {wc.sfreq:g} Hz, the model expects "
                                f"{sfreq:g} Hz")
            scale = self._scale(rec.headers)
            position = self._position(sid, wc, n)
        except (WireError, UnicodeDecodeError) as exc:
            if limit is None or rec.offset >= limit:  # re-read warm-up data was dead-lettered before
                detail = getattr(exc, "reason", None) or f"key is not UTF-8: {exc}"
                self._reject(rec, _reason(detail), detail)
            return None
        if position == "restart":
            # The producer began again (new session, or its sequence back with later timestamps):
            # positions restart; markers already handed on belong to the engine's old segment.
            self.stats.restarts += 1
            self.stats.events.append(("restart", sid, wc.seq))
            self.next_seq[sid] = wc.seq + n
            self._replayed.pop(sid, None)
            self._on_restart(sid)
        elif position == "gap":
            gap = wc.seq - self.next_seq[sid]
            self.stats.gaps += 1
            self.stats.gap_samples += gap
            self.stats.events.append(("gap", sid, gap))
        elif position == "behind":
            self.stats.duplicates += 1
        self.next_seq[sid] = max(self.next_seq.get(sid, 0), wc.seq + n)
        self._session[sid] = wc.session
        self.last_ts[sid] = max(self.last_ts.get(sid, -np.inf), wc.timestamp + (n - 1) / wc.sfreq)
        self.stream_tp[sid] = tp
        if limit is not None and rec.offset < limit:
            self._replayed[sid] = max(self._replayed.get(sid, -1), wc.seq + n)
        steps = self._steps.get((n, wc.sfreq))
        if steps is None:
            steps = self._steps[(n, wc.sfreq)] = np.arange(n) / wc.sfreq
        data = wc.data if scale is None or scale == 1.0 else to_volts(wc.data, scale)
        return Chunk(sid, data, wc.timestamp + steps, wc.seq, arrival, wc.session, scale is not None)

    def _scale(self, headers: Any) -> float | None:
        """Scale to volts from the chunk's ``units`` header, else the default units (``None``: neither)."""
        for key, value in headers or ():
            if key == "units":
                scale = self._scales.get(value)
                if scale is None:
                    try:
                        scale = volts_per_unit(bytes(value).decode("utf-8", "replace"))
                    except UnitError as exc:
                        raise WireError(f"units header: {exc}") from None
                    self._scales[value] = scale
                return scale
        return self._default_scale

    def _position(self, sid: str, wc: Any, n: int) -> str:
        """Where a chunk lies in its stream (`StreamTracker.seq_verdict`); `WireError` if corrupt."""
        expected = self.next_seq.get(sid)
        if expected is None:
            return "first"
        rule = self._rules.get(wc.sfreq)
        if rule is None:
            rule = self._rules[wc.sfreq] = StreamTracker(wc.sfreq)
        old = self._session.get(sid)
        if (wc.session is not None and old is not None and wc.session != old
                and not rule.continues(expected, self.last_ts.get(sid), wc.seq, wc.timestamp)):
            return "restart"
        verdict = rule.seq_verdict(expected, self.last_ts.get(sid), wc.seq, wc.timestamp)
        if verdict == "outlier":
            self.stats.seq_outliers += 1
            raise WireError(f"seq-outlier: stream {sid!r} chunk at sequence {wc.seq} is far out of line "
                            f"with the stream (next expected {expected}) and its timestamps")
        return verdict


def _reason(detail: str) -> str:
    """A short label for a dead letter's long reason (the metric label; the detail goes in the log)."""
    for needle, label in (("channels", "channels"), ("sampled at", "sfreq"), ("no key", "no-key"),
                          ("UTF-8", "key-encoding"), ("seq-outlier", "seq-outlier"),
                          ("units header", "units")):
        if needle in detail:
            return label
    return "undecodable"


def coalesce(chunks: list[Chunk]) -> list[Chunk]:
    """Join consecutive chunks of a stream (contiguous ``seq``) polled together into one.

    A backlog arrives as many small messages per stream; the engine does the same work on one
    longer chunk for a fraction of the per-chunk overhead. Order within each stream is kept.
    """
    runs: dict[str, list[list[Chunk]]] = {}
    order: list[tuple[str, int]] = []
    for ch in chunks:
        seqs = runs.setdefault(ch.stream_id, [])
        last = seqs[-1][-1] if seqs else None
        if (last is not None and last.seq is not None and ch.seq == last.seq + last.data.shape[1]
                and ch.session == last.session and ch.units_declared == last.units_declared
                and ch.data.dtype == last.data.dtype and ch.data.shape[0] == last.data.shape[0]):
            seqs[-1].append(ch)
        else:
            seqs.append([ch])
            order.append((ch.stream_id, len(seqs) - 1))
    out = []
    for sid, k in order:
        run = runs[sid][k]
        if len(run) == 1:
            out.append(run[0])
            continue
        out.append(Chunk(sid, np.concatenate([c.data for c in run], axis=1),
                         np.concatenate([c.timestamps for c in run]), run[0].seq, run[-1].arrival,
                         run[0].session, run[0].units_declared))
    return out
