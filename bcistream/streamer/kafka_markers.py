"""Cue markers of a Kafka source: the marker-topic consumer and the markers held for owned streams.

Every engine of a group reads the whole marker topic (`MarkerFeed`, a consumer outside the group)
but hands on only the markers of the streams whose partitions it owns (`MarkerBook`). A marker is
handed on once; it is forgotten once its stream is ``keep_samples`` past it. Markers re-read after
the marker log was truncated or recreated are recognised and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

from bcistream.realtime.events import EngineEvent
from bcistream.realtime.protocols import Marker
from bcistream.streamer.kafka_health import FetchWatch
from bcistream.streamer.kafka_stats import KafkaSourceStats
from bcistream.streamer.wire import WireError, decode_marker_full

__all__ = ["MarkerBook", "MarkerFeed"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    marker: Marker
    emitted: bool = False


class MarkerBook:
    """Markers taken from the marker topic, per stream, until handed on and old enough to forget."""

    def __init__(self) -> None:
        self._seen: dict[str, dict[tuple[int | None, object, str | None], None]] = {}
        self._pending: dict[str, list[_Pending]] = {}

    def add(self, sid: str, sample: int | None, label: object, session: str | None) -> bool:
        """Hold a marker of stream ``sid``; False when it was taken before (nothing is held)."""
        seen = self._seen.setdefault(sid, {})
        key = (sample, label, session)  # a restarted producer's markers (new session) are new
        if key in seen:
            return False  # re-read after the log was truncated or recreated: already taken
        seen[key] = None
        self._pending.setdefault(sid, []).append(_Pending(Marker(sid, label, sample=sample, session=session)))
        return True

    def hand_on(self, owned: Container[str], next_seq: Mapping[str, int], keep_samples: int) -> list[Marker]:
        """Markers of the ``owned`` streams not handed on yet; forget those ``keep_samples`` behind.

        Parameters
        ----------
        owned : container of str
            Streams this source reads (a marker of another stream waits: it may become ours).
        next_seq : mapping of str to int
            Each stream's next expected sequence number.
        keep_samples : int
            A marker is forgotten once its stream is this many samples past it.

        Returns
        -------
        markers : list of Marker
        """
        out = []
        for sid, items in self._pending.items():
            if sid not in owned:
                continue
            done = next_seq.get(sid, 0) - keep_samples
            keep = []
            for p in items:
                if not p.emitted:
                    out.append(p.marker)
                    p.emitted = True
                if p.marker.sample is None or p.marker.sample >= done:
                    keep.append(p)
            self._pending[sid] = keep
            seen = self._seen.get(sid)
            if seen and len(seen) > 2 * len(keep) + 64:
                self._seen[sid] = {k: None for k in seen if k[0] is None or k[0] >= done}
        return out

    def restart(self, sid: str) -> None:
        """Stream ``sid`` began again: markers already handed on belong to the engine's old segment."""
        self._pending[sid] = [p for p in self._pending.get(sid, []) if not p.emitted]


class MarkerFeed:
    """Reads the marker topic into a `MarkerBook`, from its beginning, every partition.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        A consumer outside the group (partitions are assigned here, once the topic exists).
    topic : str
        The marker topic.
    book : MarkerBook
        Where the markers go.
    stats : KafkaSourceStats
        ``markers`` counts the markers taken.
    watch : FetchWatch
        Lag and stall watch of ``consumer``.
    note : callable
        ``f(events)`` records a list of `EngineEvent` (the watch's, and ``markers_behind``).
    reject : callable
        ``f(record, reason, detail)`` dead-letters an undecodable marker.
    """

    def __init__(self, consumer: Any, topic: str, book: MarkerBook, stats: KafkaSourceStats, *,
                 watch: FetchWatch, note: Callable[[list[EngineEvent]], None],
                 reject: Callable[[Any, str, str], None]) -> None:
        self.consumer = consumer
        self.topic = topic
        self.book = book
        self.stats = stats
        self.watch = watch
        self._note = note
        self._reject = reject
        self._assigned = False
        self._checked = 0.0

    def poll(self, wait_s: float, drain: bool = False) -> None:
        """Take the markers that arrived; with ``drain``, up to the end of the topic.

        Parameters
        ----------
        wait_s : float
            How long a drain waits for the consumer to reach the end of the topic (then a
            ``markers_behind`` event) and for the end offsets.
        drain : bool
            Poll until the consumer has reached the end offsets of now (catching up).
        """
        if not self._assigned:
            now = time.monotonic()
            if now - self._checked < 0.5 and not drain:
                return
            self._checked = now
            from kafka import TopicPartition
            from kafka.errors import KafkaError

            try:
                parts = self.consumer.partitions_for_topic(self.topic)
            except KafkaError as exc:  # the broker is away: look again at a later poll
                log.debug("marker topic metadata unavailable: %s", exc)
                return
            if not parts:
                return
            self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
            self.consumer.seek_to_beginning()
            self._assigned = True
            drain = True
        if not drain:
            self._take_all(self.consumer.poll(timeout_ms=0))
            self._note(self.watch.check())
            return
        deadline = time.monotonic() + wait_s
        ends, polled = None, False
        while True:
            if ends is None:  # unknown while the broker reconnects: keep asking, never assume reached
                ends = self._ends(max(0.05, min(1.0, deadline - time.monotonic())))
                polled = False
            if ends is not None:
                target, lagging = self._target(ends)
                # Position is where poll has handed records up to: at the target, nothing is left.
                # A broker whose end offsets lag its fetches (tansu's S3 storage answers a stale
                # one) is trusted only after one more fetch round has refreshed the high watermark.
                if self._reached(target) and (polled or not lagging):
                    return
            got = self.consumer.poll(timeout_ms=15)
            polled = True
            self._take_all(got)
            self._note(self.watch.check())
            if time.monotonic() >= deadline:
                why = ("its end offsets were unavailable" if ends is None
                       else "it did not reach the end offsets")
                self._note([EngineEvent(
                    "markers_behind", None, 0, "marker-consumer",
                    f"the marker consumer fell behind on {self.topic} while the data caught up "
                    f"({why} within {wait_s:g} s): late cues may be lost")])
                return  # logged once, with the other events, by the run's event monitor

    def _take_all(self, got: dict) -> None:
        for records in got.values():
            for rec in records:
                self._take(rec)

    def _ends(self, wait_s: float) -> dict | None:
        """End offsets of the marker partitions now (a broker round trip; waits out a reconnect).

        A producer that waits for each marker's acknowledgement before sending the chunk holding
        the cue (`KafkaChunkProducer.send_marker` does) puts the marker in the log before that
        chunk, so once the marker consumer has reached these offsets no cue of the fetched data can
        still be on its way (a marker consumer that reconnects more slowly than the data consumer
        after a broker restart would otherwise let the engine pass the windows of the first cues).
        ``None`` when the broker did not answer in ``wait_s``: the drain asks again.
        """
        from kafka.errors import KafkaError

        try:
            return self.consumer.end_offsets(list(self.consumer.assignment()),
                                             timeout_ms=int(wait_s * 1000))
        except (KafkaError, ValueError) as exc:
            log.debug("marker end offsets unavailable: %s", exc)
            return None

    def _target(self, ends: dict) -> tuple[dict, bool]:
        """Per partition, the later of ``ends`` and the last fetch's high watermark; whether it lagged."""
        target, lagging = {}, False
        for tp, end in ends.items():
            high = self.consumer.highwater(tp)
            if high is not None and high > end:
                lagging = True
                end = high
            target[tp] = end
        return target, lagging

    def _reached(self, ends: dict) -> bool:
        for tp, end in ends.items():
            try:
                pos = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # noqa: BLE001 - no position yet: not there
                return False
            if pos is None or pos < end:
                return False
        return True

    def _take(self, rec: Any) -> None:
        try:
            sid, sample, label, session = decode_marker_full(rec.value, rec.key)
        except WireError as exc:
            self._reject(rec, "marker", exc.reason)
            return
        if self.book.add(sid, sample, label, session):
            self.stats.markers += 1

    def close(self) -> None:
        """Close the consumer (it commits nothing: it is in no group)."""
        self.consumer.close(autocommit=False)
