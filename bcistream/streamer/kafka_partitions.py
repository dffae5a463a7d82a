"""Partitions a Kafka source owns: rebalance bookkeeping, warm-up seeks, read and committed offsets.

kafka-python 3 forbids commits (and ``committed()``/``position()``) inside a rebalance listener,
so the listener (`rebalance_listener`) only records what changed; the seek back of a new partition
for warm-up (`PartitionBook.rewind`) runs after the poll that assigned it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bcistream.realtime.events import EngineEvent, EventQueue
from bcistream.streamer.kafka_stats import KafkaSourceStats

__all__ = ["PartitionBook", "rebalance_listener"]

log = logging.getLogger(__name__)


def rebalance_listener(on_revoked: Callable[[set], None], on_assigned: Callable[[set], None]) -> Any:
    """A kafka-python ``ConsumerRebalanceListener`` calling ``on_revoked`` / ``on_assigned`` with sets.

    Built on call because kafka-python is imported only when a Kafka client is made.
    """
    from kafka import ConsumerRebalanceListener

    class _Listener(ConsumerRebalanceListener):
        """Only records what changed (kafka-python 3 forbids commits in a rebalance listener)."""

        def on_partitions_revoked(self, revoked: Any) -> None:
            on_revoked(set(revoked))

        def on_partitions_assigned(self, assigned: Any) -> None:
            on_assigned(set(assigned))

    return _Listener()


class PartitionBook:
    """Owned partitions of a group consumer, how far they were read, what was committed.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        The group consumer of the chunk topic.
    stats : KafkaSourceStats
        ``commits``, ``commit_failures`` and the ``assigned`` entries of ``events`` go here.
    events : EventQueue
        Receives an ``assigned`` event per partition rewound for warm-up, and a
        ``broker_unreachable`` event when the broker does not answer for their offsets.
    commit_timeout_s : float
        How long a commit waits for the broker before it is left for the next poll.

    Attributes
    ----------
    owned : set of TopicPartition
        Partitions currently assigned.
    warm_limit : dict
        Per partition, the committed offset it was assigned at: records below it are re-read
        warm-up data (their decisions and dead letters were the previous owner's).
    """

    def __init__(self, consumer: Any, stats: KafkaSourceStats, events: EventQueue,
                 commit_timeout_s: float = 2.0) -> None:
        self.consumer = consumer
        self.commit_timeout_s = float(commit_timeout_s)
        self.stats = stats
        self.events = events
        self.owned: set = set()
        self.warm_limit: dict[Any, int] = {}
        self._new: set = set()
        self._offsets: dict[Any, int] = {}
        self._committed: dict[Any, int] = {}
        self._positioning_failed = False  # said once per outage (a broker_unreachable event)

    # -- rebalance callbacks (called from inside consumer.poll) ------------------------------------
    def revoke(self, revoked: set) -> None:
        """Forget ``revoked`` partitions."""
        self.owned -= revoked
        self._new -= revoked
        for tp in revoked:
            self._offsets.pop(tp, None)
            self._committed.pop(tp, None)
            self.warm_limit.pop(tp, None)

    def assign(self, assigned: set) -> None:
        """Own ``assigned`` partitions; those not owned before wait for `take_new`."""
        self._new |= assigned - self.owned
        self.owned |= assigned

    # -- after the poll ----------------------------------------------------------------------------
    def take_new(self) -> set:
        """Partitions assigned since the last call."""
        new, self._new = self._new, set()
        return new

    def rewind(self, new: set, fetched: dict, warmup_messages: int, timeout_s: float = 2.0) -> bool:
        """Seek ``new`` partitions ``warmup_messages`` before their committed offset.

        A partition without a committed offset is sent back to the first record ``fetched`` of it
        (if any), so that those records are read again after the assignment.

        Returns False when the broker did not answer within ``timeout_s`` (it went away just after
        the assignment): nothing is positioned, the ``fetched`` records are to be read again (a
        local seek back) and the partitions are handed out by the next `take_new` to try again.
        """
        from kafka.errors import KafkaError

        ms = max(1, int(timeout_s * 1000))
        try:
            begin = self.consumer.beginning_offsets(list(new), timeout_ms=ms)
            committed = {tp: self.consumer.committed(tp, timeout_ms=ms) for tp in new}
        except KafkaError as exc:
            for tp in new:
                if fetched.get(tp):
                    self.consumer.seek(tp, fetched[tp][0].offset)
            self._new |= new & self.owned
            if not self._positioning_failed:
                self._positioning_failed = True
                names = ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in new))
                self.events.append(EngineEvent(
                    "broker_unreachable", None, len(new), "positioning",
                    f"the broker did not answer for the offsets of {names} ({type(exc).__name__}): "
                    "nothing is read from them until it does; trying again at every poll"))
            return False
        self._positioning_failed = False
        for tp in new:
            meta = committed[tp]
            if meta is None:
                if fetched.get(tp):
                    self.consumer.seek(tp, fetched[tp][0].offset)
                continue
            start = max(int(begin.get(tp, 0)), int(meta) - warmup_messages)
            self.warm_limit[tp] = int(meta)
            self._committed[tp] = int(meta)
            self.consumer.seek(tp, start)
            self.stats.events.append(("assigned", f"{tp.topic}[{tp.partition}]", int(meta) - start))
            self.events.append(EngineEvent("assigned", None, int(meta) - start, "rebalance",
                                           f"{tp.topic}[{tp.partition}] assigned at committed offset "
                                           f"{int(meta)}; re-reading {int(meta) - start} messages"))
        return True

    def mark_read(self, tp: Any, next_offset: int) -> None:
        """Partition ``tp`` has been polled up to (not including) ``next_offset``."""
        self._offsets[tp] = next_offset

    def resume_point(self) -> dict:
        """Next offset per owned partition, for what has been polled so far."""
        return {tp: off for tp, off in self._offsets.items() if tp in self.owned}

    def commit(self, point: dict) -> None:
        """Commit offsets of ``point`` (only partitions still owned and advanced)."""
        from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError
        from kafka.structs import OffsetAndMetadata

        todo = {tp: off for tp, off in (point or {}).items()
                if tp in self.owned and self._committed.get(tp) != off}
        if not todo:
            return
        try:
            self.consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in todo.items()},
                                 timeout_ms=max(1, int(self.commit_timeout_s * 1000)))
        except KafkaTimeoutError:
            # The broker is away: the commit is tried again after the next poll (a stop waits for
            # no broker). Data read since the last commit is re-read if the run ends first.
            self.stats.commit_failures += 1
            log.debug("offset commit timed out; trying again after the next poll")
            return
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: the new owner re-reads from the last commit.
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); data will be re-read by the new owner", exc)
            return
        self._committed.update(todo)
        self.stats.commits += 1
