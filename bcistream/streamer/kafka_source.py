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
start of the log (the engine drops samples it has seen, `MarkerBook` drops markers it has taken).
A broker that stops answering while no data comes is said once (`BrokerProbe`), and again when it
is back; the broker calls of a poll have bounded waits, so a run still stops on time without it.
Every such case, and every dead letter, is an `EngineEvent` in `KafkaSource.events`.

The work is split by job: `PartitionBook` (rebalances, warm-up seeks, commits), `ChunkIntake`
(records → chunks, stream positions), `MarkerFeed` and `MarkerBook` (cue markers), `Rejections`
(dead letters); `KafkaSource` owns the clients and runs one poll through them.
"""

from __future__ import annotations

import time
from typing import Any

from bcistream.data.contract import volts_per_unit
from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.realtime.protocols import Batch
from bcistream.realtime.records import Decision
from bcistream.streamer.dead_letter import DeadLetter, Rejections
from bcistream.streamer.kafka_chunks import ChunkIntake, coalesce
from bcistream.streamer.kafka_config import consumer_config, producer_config
from bcistream.streamer.kafka_health import BrokerProbe, FetchWatch, poll_in_slices
from bcistream.streamer.kafka_markers import MarkerBook, MarkerFeed
from bcistream.streamer.kafka_partitions import PartitionBook, rebalance_listener
from bcistream.streamer.kafka_stats import KafkaSourceStats
from bcistream.streamer.kafka_topics import TopicCheck, unread_events

__all__ = ["KafkaSource", "KafkaSourceStats"]

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
    marker_slack_s : float
        How far (seconds of stream time) a stream may run ahead of the last point where the marker
        topic was known complete before the chunks wait for a drain of the marker consumer to the
        end of the topic. Keeps every cue's marker in before the engine passes the cue's window plus
        its history (``EngineConfig.history_s``, 4 s by default: keep this below it). A live stream
        drains about once per ``marker_slack_s`` (one end-offsets round trip); a backlog, a burst
        replay or a marker consumer still reconnecting after a broker restart waits for it.
    units : str, optional
        Unit of chunks that carry no ``units`` header (the profile's ``units``); with neither, the
        chunks are marked undeclared and the engine checks their plausibility as volts.
    stall_s : float
        A consumer behind its high watermark that makes no progress for this long is recovered
        (re-fetch with a doubled ``fetch_max_wait_ms``, up to 1 s) and a ``stall`` event is queued.
    marker_wait_s : float
        While catching up, how long the chunks wait for the marker consumer to reach the end of the
        marker topic (a ``markers_behind`` event when it does not).
    topic_wait_s : float
        A topic missing at the start (a ``topic_missing`` event) is looked up again this long
        after; still missing or empty, a second event says so (`TopicCheck`). A data topic that
        exists but holds no message is looked at again after 30 s (or this, if longer).
    join_wait_s : float
        While the consumer joins its group (at the start and after every rebalance, when it owns
        no partition), one `poll` waits up to this long (or ``timeout``, if longer) for the join.
        kafka-python 3 (3.0.12, and its main branch as of 2026-08) throws away a JoinGroup /
        SyncGroup answer that arrives while no ``poll`` waits for it and joins again; a caller
        that polls briefly and then works (an engine loop, a 20 ms poll between sleeps) could
        rejoin for ever and never get a partition. A longer wait only delays a stop request.
    """

    def __init__(self, bootstrap: str, topic: str = "eeg.raw", *, group: str = "bcistream",
                 markers_topic: str | None = "eeg.markers", dead_letter_topic: str = "eeg.dead-letter",
                 n_channels: int | None = None, sfreq: float | None = None,
                 kafka_config: dict[str, Any] | None = None, warmup_messages: int = 256,
                 marker_keep_samples: int = 5000, marker_slack_s: float = 1.0,
                 stall_s: float = 1.0, units: str | None = None, marker_wait_s: float = 5.0,
                 topic_wait_s: float = 5.0, join_wait_s: float = 2.0) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        self.topic = topic
        self.markers_topic = markers_topic
        self.n_channels = n_channels
        self.sfreq = sfreq
        self.warmup_messages = int(warmup_messages)
        self.marker_keep_samples = int(marker_keep_samples)
        self.marker_slack_s = float(marker_slack_s)
        self._covered: dict[str, float] = {}  # stream -> last timestamp the marker topic covers
        self.marker_wait_s = float(marker_wait_s)
        self.join_wait_s = float(join_wait_s)
        self._joining = True  # until the group's first assignment (see join_wait_s)
        # Unknown units raise here, before any client is connected.
        default_scale = None if units is None else volts_per_unit(units)
        self.stats = KafkaSourceStats()
        self.events = EventQueue()
        self._consumer = KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=group))
        self._partitions = PartitionBook(self._consumer, self.stats, self.events)
        # Before subscribing: subscribing makes an auto-creating broker create a missing topic.
        self._topics = TopicCheck(self._consumer, bootstrap,
                                  {topic: "--from kafka:TOPIC", markers_topic or "": "--markers-topic"},
                                  wait_s=topic_wait_s, empty_ok={markers_topic or ""},
                                  empty_wait_s=max(30.0, topic_wait_s))
        self._note(self._topics.start())
        self._consumer.subscribe([topic], listener=rebalance_listener(self._revoked, self._assigned))
        self._watch = FetchWatch(self._consumer, stall_s=stall_s, on_truncated=self._log_start)
        self._probe = BrokerProbe(self._consumer, topic)
        markers = (KafkaConsumer(**consumer_config(bootstrap, kafka_config, group_id=None))
                   if markers_topic else None)
        self._dead = DeadLetter(KafkaProducer(**producer_config(bootstrap, kafka_config)),
                                dead_letter_topic)
        self._rejections = Rejections(self._dead, bootstrap, kafka_config, self.stats, self.events)
        self._cues = MarkerBook()
        self._markers: MarkerFeed | None = None
        if markers_topic:
            self._markers = MarkerFeed(
                markers, markers_topic, self._cues, self.stats, note=self._note,
                reject=self._rejections.send,
                watch=FetchWatch(markers, stall_s=stall_s, on_truncated=self._log_start))
        self._chunks = ChunkIntake(self.stats, default_scale, reject=self._rejections.send,
                                   on_restart=self._cues.restart)

    # -- rebalance bookkeeping ---------------------------------------------------------------------
    def _revoked(self, revoked: set) -> None:
        # Called from inside consumer.poll: only records what changed.
        self._joining = True  # a join follows; it ends with _assigned
        self.stats.rebalances += 1
        self._watch.forget(revoked)
        self._partitions.revoke(revoked)
        self._chunks.forget(revoked)

    def _assigned(self, assigned: set) -> None:
        self._joining = False
        self._partitions.assign(assigned)

    def _start_partitions(self, fetched: dict) -> set:
        """Seek newly assigned partitions back for warm-up; return them (their fetched data is stale).

        Records fetched in the same poll as the assignment are dropped and re-read after the seek.
        A broker that does not answer for the offsets (it went away just after the assignment)
        leaves them unpositioned until a later poll (`PartitionBook.rewind`): still stale.
        """
        new = self._partitions.take_new()
        if not new:
            return set()
        if self._partitions.rewind(new, fetched, self.warmup_messages):
            self._rejections.learn(new)  # the broker answers: read back the letters sent for them
        return new

    # -- watches -----------------------------------------------------------------------------------
    def _note(self, events: list[EngineEvent]) -> None:
        for ev in events:
            self.events.append(ev)
            if ev.kind == "stall":
                self.stats.stalls += 1

    def _log_start(self, tp: Any, pos: int, high: int) -> int:
        """Where a consumer past the end of its log goes: the start (re-reads are dropped later)."""
        consumer = self._consumer
        if self._markers is not None and tp.topic == self.markers_topic:
            consumer = self._markers.consumer
        return int(consumer.beginning_offsets([tp]).get(tp, 0))

    def lag(self) -> dict[str, int]:
        """Messages behind the high watermark, per ``topic[partition]`` (both consumers)."""
        out = dict(self._watch.lag)
        if self._markers is not None:
            out.update(self._markers.watch.lag)
        return out

    def end_of_run(self) -> None:
        """The run stops: queue an ``unread`` event per topic still holding unread messages.

        Lags are those of the owned partitions at the last fetch (no request: the broker may be
        gone), refreshed from the client's positions now.
        """
        self._note(self._watch.check(force=True))
        if self._markers is not None:
            self._note(self._markers.watch.check(force=True))
        self._note(unread_events(self.lag()))
        self._note(self._topics.finish())

    # -- Source protocol ---------------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> Batch:
        """Chunks (and the markers of owned streams) that arrived; waits at most ``timeout`` s."""
        self._poll_markers()
        if self._joining:  # one poll waits for the whole join (see join_wait_s)
            got = self._consumer.poll(timeout_ms=int(max(timeout, self.join_wait_s) * 1000))
        else:
            got = poll_in_slices(self._consumer, timeout)
        stale = self._start_partitions(got)
        watched = self._watch.check()
        # A stall is how a broker that went away looks to the fetch watch first: ask it at once,
        # and while it is away the stalls are its absence, not a slow broker.
        stalled = any(ev.kind == "stall" for ev in watched)
        self._note(self._probe.check(bool(got), self._partitions.owned, force=stalled))
        self._note([ev for ev in watched if not (self._probe.down and ev.kind == "stall")])
        self._note(self._topics.check())
        batch = Batch()
        arrival = time.monotonic()
        for tp, records in got.items():
            if tp in stale or tp not in self._partitions.owned or not records:
                continue
            self._chunks.take(tp, records, arrival, batch.chunks,
                              warm_limit=self._partitions.warm_limit.get(tp),
                              n_channels=self.n_channels, sfreq=self.sfreq)
            self._partitions.mark_read(tp, records[-1].offset + 1)
        if self._markers is not None and (stale or self._ahead_of_markers(batch.chunks)):
            # Every cue marker is in the log before its chunk (the producer waits for its ack), so
            # once the marker consumer reaches the end offsets of now, the cues of every chunk
            # fetched so far are known: the engine cannot pass a window before its marker comes.
            self._poll_markers(drain=True)
            self._covered = dict(self._chunks.last_ts)
        if len(batch.chunks) > 1:
            batch.chunks = coalesce(batch.chunks)
        batch.markers = self._cues.hand_on(self._chunks.stream_tp, self._chunks.next_seq,
                                           self.marker_keep_samples)
        return batch

    def _ahead_of_markers(self, chunks: list) -> bool:
        """True when a stream of ``chunks`` runs more than ``marker_slack_s`` past its covered point."""
        covered, slack = self._covered, self.marker_slack_s
        for ch in chunks:
            base = covered.get(ch.stream_id)
            if base is None or ch.timestamps[-1] < base:  # new stream, or its clock began again
                base = covered[ch.stream_id] = float(ch.timestamps[0])
            if ch.timestamps[-1] - base > slack:
                return True
        return False

    def _poll_markers(self, drain: bool = False) -> None:
        if self._markers is not None:
            self._markers.poll(self.marker_wait_s, drain)

    def replayed(self, decision: Decision) -> bool:
        """True when ``decision`` was completed by re-read data: the previous owner published it."""
        return self._chunks.replayed(decision)

    def resume_point(self) -> dict:
        """Next offset per owned partition, for what has been polled so far."""
        return self._partitions.resume_point()

    def commit(self, point: dict) -> None:
        """Flush dead letters, then commit offsets (only partitions still owned and advanced)."""
        self._dead.flush()
        self._partitions.commit(point)

    def assignment(self) -> set:
        """Partitions this source currently owns."""
        return set(self._partitions.owned)

    def close(self) -> None:
        """Leave the group and close clients (commit first: the engine loop does)."""
        try:
            self._dead.close()
        finally:
            self._consumer.close(autocommit=False)
            if self._markers is not None:
                self._markers.close()
