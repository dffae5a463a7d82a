"""Kafka source: EEG chunks from a consumer group on ``eeg.raw``, cue markers from ``eeg.markers``.

Delivery is at-least-once: the engine loop commits `resume_point` only after the decisions for the
polled data are flushed. When a partition arrives (start, restart, rebalance) the source seeks back
``warmup_messages`` before the committed offset so the engine rebuilds each stream's filter and
window state; decisions completed by those re-read chunks were already published by the previous
owner, and `KafkaSource.replayed` tells the sink wrapper to drop them (no double decisions).
Undecodable or mismatched messages go to the dead-letter topic with the reason in the headers.

Both consumers are watched (`FetchWatch`): their lag per partition is kept for the metrics, a
consumer that is behind and does not move for ``stall_s`` is re-fetched with a longer fetch wait,
and a position past the end of the log (topic recreated, broker lost its tail) goes back to the
start of the log (the engine drops samples it has seen, markers are de-duplicated here). Every such
case, and every dead letter, is an `EngineEvent` in `KafkaSource.events`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bcistream.data.contract import UnitError, to_volts, volts_per_unit
from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.realtime.protocols import Batch, Chunk, Marker
from bcistream.realtime.records import Decision
from bcistream.realtime.tracker import StreamTracker
from bcistream.streamer.dead_letter import DeadLetter, dead_lettered_origins
from bcistream.streamer.kafka_batch import Run, decode_batch
from bcistream.streamer.kafka_config import consumer_config, producer_config
from bcistream.streamer.kafka_health import FetchWatch, poll_in_slices
from bcistream.streamer.wire import WireError, decode_chunk, decode_marker_full

__all__ = ["KafkaSource", "KafkaSourceStats"]

log = logging.getLogger(__name__)


@dataclass
class KafkaSourceStats:
    """Counters of a Kafka source (read by the live view and metrics)."""

    messages: int = 0
    bytes: int = 0
    markers: int = 0
    dead_letters: int = 0
    gaps: int = 0
    gap_samples: int = 0
    duplicates: int = 0
    restarts: int = 0
    seq_outliers: int = 0
    commits: int = 0
    commit_failures: int = 0
    rebalances: int = 0
    stalls: int = 0
    dead_letters_repeated: int = 0  #: records the previous owner of a partition had dead-lettered
    events: deque = field(default_factory=lambda: deque(maxlen=100))


@dataclass
class _Pending:
    marker: Marker
    emitted: bool = False


def _listener(source: KafkaSource) -> Any:
    from kafka import ConsumerRebalanceListener

    class _Listener(ConsumerRebalanceListener):
        """Only records what changed (kafka-python 3 forbids commits in a rebalance listener)."""

        def on_partitions_revoked(self, revoked: Any) -> None:
            source._revoked(set(revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            source._assigned(set(assigned))

    return _Listener()


class KafkaSource:
    """Chunks and cue markers from Kafka (implements `bcistream.realtime.Source`).

    Parameters
    ----------
    bootstrap : str
        Bootstrap servers.
    topic : str
        Topic of EEG chunks (wire format of `bcistream.streamer.wire`), keyed by stream id.
    group : str
        Consumer group; engines of one group split the partitions.
    markers_topic : str or None
        Topic of cue markers (every engine reads all of it and keeps the markers of its streams).
    dead_letter_topic : str
        Where undecodable messages go, with ``reason`` and origin headers.
    n_channels, sfreq : int or float, optional
        What the model expects; chunks that differ are dead-lettered with the reason.
    kafka_config : dict, optional
        Extra kafka-python settings (security, SASL, TLS, ...); see `kafka_config`.
    warmup_messages : int
        How many messages per partition before the committed offset are re-read to rebuild state.
    marker_keep_samples : int
        Markers are forgotten once a stream is this many samples past them.
    catchup_records : int
        A poll returning at least this many chunks means the engine is behind (backlog, restart):
        the marker consumer is then drained first so no cue arrives after its window.
    units : str, optional
        Unit of chunks that carry no ``units`` header (the profile's ``units``); with neither, the
        chunks are marked undeclared and the engine checks their plausibility as volts.
    stall_s : float
        A consumer behind its high watermark that makes no progress for this long is recovered
        (re-fetch with a doubled ``fetch_max_wait_ms``, up to 1 s) and a ``stall`` event is queued.
    marker_wait_s : float
        While catching up, how long the chunks wait for the marker consumer to reach the end of the
        marker topic (a ``markers_behind`` event when it does not).
    """

    def __init__(self, bootstrap: str, topic: str = "eeg.raw", *, group: str = "bcistream",
                 markers_topic: str | None = "eeg.markers", dead_letter_topic: str = "eeg.dead-letter",
                 n_channels: int | None = None, sfreq: float | None = None,
                 kafka_config: dict[str, Any] | None = None, warmup_messages: int = 256,
                 marker_keep_samples: int = 5000, catchup_records: int = 20,
                 stall_s: float = 1.0, units: str | None = None, marker_wait_s: float = 5.0) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        self.topic = topic
        self.markers_topic = markers_topic
        self.n_channels = n_channels
        self.sfreq = sfreq
        self.warmup_messages = int(warmup_messages)
        self.marker_keep_samples = int(marker_keep_samples)
        self.catchup_records = int(catchup_records)
        self.marker_wait_s = float(marker_wait_s)
        self._default_scale = None if units is None else volts_per_unit(units)
        self._scales: dict[bytes, float] = {}
        self._rules: dict[float, StreamTracker] = {}
        self._session: dict[str, str | None] = {}
        self._last_ts: dict[str, float] = {}
        self.stats = KafkaSourceStats()
        self.events = EventQueue()
        self._consumer = KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=group))
        self._consumer.subscribe([topic], listener=_listener(self))
        self._watch = FetchWatch(self._consumer, stall_s=stall_s, on_truncated=self._log_start)
        self._markers = None
        self._markers_watch = None
        if markers_topic:
            self._markers = KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=None))
            self._markers_watch = FetchWatch(self._markers, stall_s=stall_s, on_truncated=self._log_start)
        self._seen_markers: dict[str, dict[tuple[int | None, object, str | None], None]] = {}
        self._markers_assigned = False
        self._markers_checked = 0.0
        self._dead = DeadLetter(KafkaProducer(**producer_config(bootstrap, kafka_config)),
                                dead_letter_topic)
        self._bootstrap, self._kafka_config = bootstrap, kafka_config
        self._dead_origins: set[tuple[str, int, int]] = set()
        self._owned: set = set()
        self._new: set = set()
        self._offsets: dict[Any, int] = {}
        self._committed: dict[Any, int] = {}
        self._warm_limit: dict[Any, int] = {}
        self._replayed: dict[str, int] = {}
        self._next_seq: dict[str, int] = {}
        self._stream_tp: dict[str, Any] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._steps: dict[tuple[int, float], np.ndarray] = {}

    # -- rebalance bookkeeping (called from inside consumer.poll) ---------------------------------
    def _revoked(self, revoked: set) -> None:
        self.stats.rebalances += 1
        self._watch.forget(revoked)
        self._owned -= revoked
        self._new -= revoked
        for tp in revoked:
            self._offsets.pop(tp, None)
            self._committed.pop(tp, None)
            self._warm_limit.pop(tp, None)
        for sid in [s for s, tp in self._stream_tp.items() if tp in revoked]:
            # Markers already emitted stay emitted: the engine still holds them if it gets the
            # stream back, and re-sending them would decide those cues twice.
            del self._stream_tp[sid]

    def _assigned(self, assigned: set) -> None:
        self._new |= assigned - self._owned
        self._owned |= assigned

    def _start_partitions(self, fetched: dict) -> set:
        """Seek newly assigned partitions back for warm-up; return them (their fetched data is stale).

        Records fetched in the same poll as the assignment are dropped and re-read after the seek.
        """
        new, self._new = self._new, set()
        if not new:
            return set()
        # Letters the previous owner already sent for these partitions are not sent twice.
        self._dead_origins |= dead_lettered_origins(self._bootstrap, self._kafka_config,
                                                    self._dead.topic, new)
        begin = self._consumer.beginning_offsets(list(new))
        for tp in new:
            meta = self._consumer.committed(tp)
            if meta is None:
                if fetched.get(tp):
                    self._consumer.seek(tp, fetched[tp][0].offset)
                continue
            start = max(int(begin.get(tp, 0)), int(meta) - self.warmup_messages)
            self._warm_limit[tp] = int(meta)
            self._committed[tp] = int(meta)
            self._consumer.seek(tp, start)
            self.stats.events.append(("assigned", f"{tp.topic}[{tp.partition}]", int(meta) - start))
            self.events.append(EngineEvent("assigned", None, int(meta) - start, "rebalance",
                                           f"{tp.topic}[{tp.partition}] assigned at committed offset "
                                           f"{int(meta)}; re-reading {int(meta) - start} messages"))
        return new

    # -- markers -----------------------------------------------------------------------------------
    def _poll_markers(self, drain: bool = False) -> None:
        if self._markers is None:
            return
        if not self._markers_assigned:
            now = time.monotonic()
            if now - self._markers_checked < 0.5 and not drain:
                return
            self._markers_checked = now
            from kafka import TopicPartition

            parts = self._markers.partitions_for_topic(self.markers_topic)
            if not parts:
                return
            self._markers.assign([TopicPartition(self.markers_topic, p) for p in sorted(parts)])
            self._markers.seek_to_beginning()
            self._markers_assigned = True
            drain = True
        ends = self._marker_ends() if drain else None
        deadline = time.monotonic() + self.marker_wait_s
        while True:
            got = self._markers.poll(timeout_ms=15 if drain else 0)
            for records in got.values():
                for rec in records:
                    self._take_marker(rec)
            if self._markers_watch is not None:
                self._note(self._markers_watch.check())
            if not drain or (not got and self._markers_reached(ends)):
                return
            if time.monotonic() >= deadline:
                self.events.append(EngineEvent(
                    "markers_behind", None, 0, "marker-consumer",
                    f"the marker consumer did not reach the end of {self.markers_topic} within "
                    f"{self.marker_wait_s:g} s while the data caught up: late cues may be lost"))
                log.warning("marker consumer behind after %.1f s of waiting", self.marker_wait_s)
                return

    def _marker_ends(self) -> dict | None:
        """End offsets of the marker partitions now (a broker round trip; waits out a reconnect).

        Every marker of a chunk already fetched was produced before it, so once the marker
        consumer has reached these offsets no cue of the fetched data can still be on its way
        (a marker consumer that reconnects more slowly than the data consumer after a broker
        restart would otherwise let the engine pass the windows of the first cues).
        """
        from kafka.errors import KafkaError

        try:
            return self._markers.end_offsets(list(self._markers.assignment()),
                                             timeout_ms=int(self.marker_wait_s * 1000))
        except (KafkaError, ValueError) as exc:
            log.debug("marker end offsets unavailable: %s", exc)
            return None

    def _markers_reached(self, ends: dict | None) -> bool:
        if not ends:
            return True
        for tp, end in ends.items():
            try:
                pos = self._markers.position(tp, timeout_ms=0)
            except Exception:  # noqa: BLE001 - no position yet: not there
                return False
            if pos is None or pos < end:
                return False
        return True

    def _take_marker(self, rec: Any) -> None:
        try:
            sid, sample, label, session = decode_marker_full(rec.value, rec.key)
        except WireError as exc:
            self._dead_letter(rec, "marker", exc.reason)
            return
        seen = self._seen_markers.setdefault(sid, {})
        key = (sample, label, session)  # a restarted producer's markers (new session) are new
        if key in seen:
            return  # re-read after the log was truncated or recreated: already taken
        seen[key] = None
        self.stats.markers += 1
        self._pending.setdefault(sid, []).append(_Pending(Marker(sid, label, sample=sample, session=session)))

    def _owned_markers(self) -> list[Marker]:
        out = []
        for sid, items in self._pending.items():
            if sid not in self._stream_tp:
                continue
            done = self._next_seq.get(sid, 0) - self.marker_keep_samples
            keep = []
            for p in items:
                if not p.emitted:
                    out.append(p.marker)
                    p.emitted = True
                if p.marker.sample is None or p.marker.sample >= done:
                    keep.append(p)
            self._pending[sid] = keep
            seen = self._seen_markers.get(sid)
            if seen and len(seen) > 2 * len(keep) + 64:
                self._seen_markers[sid] = {k: None for k in seen if k[0] is None or k[0] >= done}
        return out

    def _dead_letter(self, rec: Any, reason: str, detail: str) -> None:
        origin = (rec.topic, rec.partition, rec.offset)
        if origin in self._dead_origins:
            self._dead_origins.discard(origin)
            self.stats.dead_letters_repeated += 1
            log.info("%s[%s]@%s was dead-lettered by the partition's previous owner: not sent again",
                     *origin)
            return
        self._dead.send(rec, detail)
        self.stats.dead_letters += 1
        self.events.append(EngineEvent("dead_letter", None, 0, reason,
                                       f"{rec.topic}[{rec.partition}]@{rec.offset}: {detail}"))

    def _note(self, events: list[EngineEvent]) -> None:
        for ev in events:
            self.events.append(ev)
            if ev.kind == "stall":
                self.stats.stalls += 1

    def _log_start(self, tp: Any, pos: int, high: int) -> int:
        """Where a consumer past the end of its log goes: the start (re-reads are dropped later)."""
        consumer = self._markers if tp.topic == self.markers_topic else self._consumer
        return int(consumer.beginning_offsets([tp]).get(tp, 0))

    def lag(self) -> dict[str, int]:
        """Messages behind the high watermark, per ``topic[partition]`` (both consumers)."""
        out = dict(self._watch.lag)
        if self._markers_watch is not None:
            out.update(self._markers_watch.lag)
        return out

    # -- Source protocol ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> Batch:
        """Chunks (and the markers of owned streams) that arrived; waits at most ``timeout`` s."""
        self._poll_markers()
        got = poll_in_slices(self._consumer, timeout)
        stale = self._start_partitions(got)
        self._note(self._watch.check())
        if stale or sum(len(r) for r in got.values()) >= self.catchup_records:
            # Catching up on a backlog: the cues of these chunks were produced before them, so
            # wait for the marker consumer to fetch them before the engine passes their windows.
            self._poll_markers(drain=True)
        batch = Batch()
        arrival = time.monotonic()
        for tp, records in got.items():
            if tp in stale or tp not in self._owned or not records:
                continue
            self._take_records(tp, records, arrival, batch.chunks)
            self._offsets[tp] = records[-1].offset + 1
        if len(batch.chunks) > 1:
            batch.chunks = _coalesce(batch.chunks)
        batch.markers = self._owned_markers()
        return batch

    def _take_records(self, tp: Any, records: list, arrival: float, out: list[Chunk]) -> None:
        """Chunks of one partition's fetched records: whole runs at once where the batch allows.

        `decode_batch` decodes the records with one numpy operation when they share one layout;
        a run that is not the plain continuation of its stream (first after a gap, a restart, a
        re-delivery, an outlier) and every batch it refuses go message by message, where each
        case is counted, reported or dead-lettered.
        """
        runs = decode_batch(records, self.n_channels, self.sfreq)
        if runs is None:
            for rec in records:
                chunk = self._take_chunk(tp, rec, arrival)
                if chunk is not None:
                    out.append(chunk)
            return
        by_offset: dict[int, Any] | None = None
        for run in runs:
            chunk = self._take_run(tp, run, arrival)
            if chunk is not None:
                out.append(chunk)
                continue
            by_offset = by_offset or {rec.offset: rec for rec in records}
            for off in run.offsets:
                chunk = self._take_chunk(tp, by_offset[int(off)], arrival)
                if chunk is not None:
                    out.append(chunk)

    def _take_run(self, tp: Any, run: Run, arrival: float) -> Chunk | None:
        """A run that continues its stream exactly (None: take its messages one by one)."""
        sid, n = run.stream_id, run.n_samples
        expected = self._next_seq.get(sid)
        if expected is not None and (run.seq != expected or run.session != self._session.get(sid)):
            return None
        self.stats.messages += run.n_messages
        self.stats.bytes += run.n_bytes
        self._next_seq[sid] = run.seq + n
        self._session[sid] = run.session
        self._last_ts[sid] = max(self._last_ts.get(sid, -np.inf), float(run.timestamps[-1]))
        self._stream_tp[sid] = tp
        limit = self._warm_limit.get(tp)
        if limit is not None:
            below = np.flatnonzero(run.offsets < limit)
            if len(below):
                per = n // run.n_messages
                self._replayed[sid] = max(self._replayed.get(sid, -1), run.seq + (int(below[-1]) + 1) * per)
        scale = self._default_scale
        data = run.data if scale is None or scale == 1.0 else to_volts(run.data, scale)
        return Chunk(sid, data, run.timestamps, run.seq, arrival, run.session, scale is not None)

    def _take_chunk(self, tp: Any, rec: Any, arrival: float) -> Chunk | None:
        self.stats.messages += 1
        self.stats.bytes += len(rec.value or b"")
        try:
            if rec.key is None:
                raise WireError("message has no key (the stream id)")
            sid = rec.key.decode("utf-8")
            wc = decode_chunk(rec.value)
            n_ch, n = wc.data.shape
            if self.n_channels is not None and n_ch != self.n_channels:
                raise WireError(f"stream {sid!r} has {n_ch} channels, the model expects {self.n_channels}")
            if self.sfreq is not None and abs(wc.sfreq - self.sfreq) > 1e-6:
                raise WireError(f"stream {sid!r} is sampled at {wc.sfreq:g} Hz, the model expects "
                                f"{self.sfreq:g} Hz")
            scale = self._scale(rec.headers)
            position = self._position(sid, wc, n)
        except (WireError, UnicodeDecodeError) as exc:
            limit = self._warm_limit.get(tp)
            if limit is None or rec.offset >= limit:  # re-read warm-up data was dead-lettered before
                detail = getattr(exc, "reason", None) or f"key is not UTF-8: {exc}"
                self._dead_letter(rec, _reason(detail), detail)
            return None
        if position == "restart":
            # The producer began again (new session, or its sequence back with later timestamps):
            # positions restart; markers already handed on belong to the engine's old segment.
            self.stats.restarts += 1
            self.stats.events.append(("restart", sid, wc.seq))
            self._next_seq[sid] = wc.seq + n
            self._replayed.pop(sid, None)
            self._pending[sid] = [p for p in self._pending.get(sid, []) if not p.emitted]
        elif position == "gap":
            gap = wc.seq - self._next_seq[sid]
            self.stats.gaps += 1
            self.stats.gap_samples += gap
            self.stats.events.append(("gap", sid, gap))
        elif position == "behind":
            self.stats.duplicates += 1
        self._next_seq[sid] = max(self._next_seq.get(sid, 0), wc.seq + n)
        self._session[sid] = wc.session
        self._last_ts[sid] = max(self._last_ts.get(sid, -np.inf), wc.timestamp + (n - 1) / wc.sfreq)
        self._stream_tp[sid] = tp
        limit = self._warm_limit.get(tp)
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
        expected = self._next_seq.get(sid)
        if expected is None:
            return "first"
        rule = self._rules.get(wc.sfreq)
        if rule is None:
            rule = self._rules[wc.sfreq] = StreamTracker(wc.sfreq)
        old = self._session.get(sid)
        if (wc.session is not None and old is not None and wc.session != old
                and not rule.continues(expected, self._last_ts.get(sid), wc.seq, wc.timestamp)):
            return "restart"
        verdict = rule.seq_verdict(expected, self._last_ts.get(sid), wc.seq, wc.timestamp)
        if verdict == "outlier":
            self.stats.seq_outliers += 1
            raise WireError(f"seq-outlier: stream {sid!r} chunk at sequence {wc.seq} is far out of line "
                            f"with the stream (next expected {expected}) and its timestamps")
        return verdict

    def replayed(self, decision: Decision) -> bool:
        """True when ``decision`` was completed by re-read data: the previous owner published it."""
        return decision.window_end <= self._replayed.get(decision.stream_id, -1)

    def resume_point(self) -> dict:
        """Next offset per owned partition, for what has been polled so far."""
        return {tp: off for tp, off in self._offsets.items() if tp in self._owned}

    def commit(self, point: dict) -> None:
        """Flush dead letters, then commit offsets (only partitions still owned and advanced)."""
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        self._dead.flush()
        todo = {tp: off for tp, off in (point or {}).items()
                if tp in self._owned and self._committed.get(tp) != off}
        if not todo:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in todo.items()})
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the new owner re-reads from the last commit.
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); data will be re-read by the new owner", exc)
            return
        self._committed.update(todo)
        self.stats.commits += 1

    def assignment(self) -> set:
        """Partitions this source currently owns."""
        return set(self._owned)

    def close(self) -> None:
        """Leave the group and close clients (commit first: the engine loop does)."""
        try:
            self._dead.close()
        finally:
            self._consumer.close(autocommit=False)
            if self._markers is not None:
                self._markers.close(autocommit=False)


def _reason(detail: str) -> str:
    """A short label for a dead letter's long reason (the metric label; the detail goes in the log)."""
    for needle, label in (("channels", "channels"), ("sampled at", "sfreq"), ("no key", "no-key"),
                          ("UTF-8", "key-encoding"), ("seq-outlier", "seq-outlier"),
                          ("units header", "units")):
        if needle in detail:
            return label
    return "undecodable"


def _coalesce(chunks: list[Chunk]) -> list[Chunk]:
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
