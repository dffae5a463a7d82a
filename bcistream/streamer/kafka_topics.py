"""Topics a Kafka run reads that are missing, and what a run leaves unread when it stops.

A typo in a topic name (``--from kafka:eeg.typo``, ``--markers-topic eeg.markerz``) used to run
silently: no data, ``decided cues 0/0``, exit code 0. `TopicCheck` looks the topics up once before
the consumer subscribes and says which are missing (a ``topic_missing`` event), then looks again
after ``wait_s``. It does not fail: a producer may create the topic later. Subscribing makes a
broker that auto-creates topics (the bundled tansu, Kafka with ``auto.create.topics.enable``)
create it, empty, so the second look also reports a topic that was missing at the start and still
holds no message ("nothing was ever produced to it").

`unread_events` turns the consumers' lag at the end of a run into ``unread`` events: the final
line must say what was not read, not only the coverage of what arrived.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bcistream.realtime.events import EngineEvent

__all__ = ["TopicCheck", "create_topics", "unread_events"]

log = logging.getLogger(__name__)


def create_topics(bootstrap: str, topics: dict[str, int], kafka_config: dict[str, Any] | None = None) -> None:
    """Create ``topics`` (name -> partitions, replication 1) on the broker; existing ones are kept.

    Parameters
    ----------
    bootstrap : str
        Bootstrap servers.
    topics : dict
        Topic name -> number of partitions.
    kafka_config : dict, optional
        Extra kafka-python client settings (security, ...).

    Raises
    ------
    kafka.errors.KafkaError
        The broker refused (other than "already exists") or did not answer in 10 s.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **(kafka_config or {}))
    try:
        for name, n in topics.items():  # one by one: one that exists does not stop the others
            try:
                admin.create_topics([NewTopic(name, n, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class TopicCheck:
    """Say (events) which topics do not exist on the broker, at the start and ``wait_s`` later.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        Asked for the broker's topics (call `start` before it subscribes: see the module docstring).
    bootstrap : str
        Named in the messages.
    topics : dict
        Topic name -> the option that names it (``"--from"``, ``"--markers-topic"``).
    wait_s : float
        When to look again at topics that were missing (or empty).
    clock : callable
        Monotonic clock (injectable for tests).
    empty_ok : set of str
        Topics that may stay empty (a marker topic before the first cue). Any other topic that
        exists but holds no message at the start is looked at again ``empty_wait_s`` later: a
        typo that an earlier run's subscription created is otherwise silent.
    empty_wait_s : float
        When to look again at topics that existed but were empty (longer than ``wait_s``: a
        producer started with the engine takes a few seconds to send).

    Each look yields at most one event, naming every topic concerned (the run's event log shows
    one line per kind at a time: a second event would hide the first).
    """

    def __init__(self, consumer: Any, bootstrap: str, topics: dict[str, str], wait_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, empty_ok: set[str] | None = None,
                 empty_wait_s: float = 30.0) -> None:
        self.consumer = consumer
        self.bootstrap = bootstrap
        self.topics = {t: flag for t, flag in topics.items() if t}
        self.wait_s = float(wait_s)
        self._clock = clock
        self.empty_ok = set(empty_ok or ())
        self.empty_wait_s = float(empty_wait_s)
        self._empty_at: float | None = None
        self.missing: set[str] = set()
        self.empty: set[str] = set()
        self._again_at: float | None = None

    def _known(self) -> set[str] | None:
        try:
            return set(self.consumer.topics())
        except Exception as exc:  # noqa: BLE001 - no answer: nothing to judge
            log.debug("topic list unavailable: %s", exc)
            return None

    def _event(self, said: list[tuple[str, str]]) -> list[EngineEvent]:
        """One event for ``(topic, what)`` pairs (none for none)."""
        if not said:
            return []
        where = f"on the broker at {self.bootstrap}"
        if len(said) == 1:
            (topic, what), = said
            text = f"topic '{topic}' {what} {where}: waiting for it; check {self.topics[topic]}"
        else:
            text = "; ".join(f"topic '{t}' {what} (check {self.topics[t]})" for t, what in said)
            text = f"{text} — {where}: waiting for them"
        return [EngineEvent("topic_missing", None, 0, "no-topic", text)]

    def start(self) -> list[EngineEvent]:
        """Look the topics up (one metadata request for all topics, which creates none)."""
        known = self._known()
        if known is None:
            return []
        self.missing = {t for t in self.topics if t not in known}
        self.empty = {t for t in self.topics
                      if t in known and t not in self.empty_ok and self._empty(t)}
        now = self._clock()
        self._again_at = now + self.wait_s if self.missing else None
        self._empty_at = now + self.empty_wait_s if self.empty else None
        return self._event([(t, "does not exist (yet)") for t in sorted(self.missing)])

    def check(self) -> list[EngineEvent]:
        """``wait_s`` after `start` the missing topics, ``empty_wait_s`` after it the empty ones, once:
        those that still do not exist or hold nothing."""
        now, due = self._clock(), set()
        if self._again_at is not None and now >= self._again_at:
            self._again_at, due = None, due | self.missing
        if self._empty_at is not None and now >= self._empty_at:
            self._empty_at, due = None, due | self.empty
        if not due:
            return []
        known = self._known()
        if known is None:
            return []
        said = []
        for topic in sorted(due):
            if topic not in known:
                said.append((topic, f"still does not exist after {self.wait_s:g} s"))
            elif topic in self.missing and self._empty(topic):
                said.append((topic, f"did not exist at the start and after {self.wait_s:g} s still "
                                    "holds no message (created empty by the subscription; nothing was "
                                    "ever produced to it)"))
            elif topic in self.empty and self._empty(topic):
                said.append((topic, f"holds no message (at the start and {self.empty_wait_s:g} s later: "
                                    "nothing was ever produced to it; a typo that an earlier run's "
                                    "subscription created?)"))
        return self._event(said)

    def finish(self) -> list[EngineEvent]:
        """The run ends: the empty topics not looked at again yet, if they are still empty.

        A run shorter than ``empty_wait_s`` on a typo that exists (empty) otherwise ends with
        ``decided cues 0/0`` and no word about the topic.
        """
        if self._empty_at is None:
            return []
        self._empty_at = None
        said = [(t, "held no message during the whole run (nothing was ever produced to it; a typo "
                    "that an earlier run's subscription created?)")
                for t in sorted(self.empty) if self._empty(t)]
        return self._event(said)

    def _empty(self, topic: str) -> bool:
        from kafka import TopicPartition

        try:
            parts = self.consumer.partitions_for_topic(topic) or set()
            ends = self.consumer.end_offsets([TopicPartition(topic, p) for p in parts], timeout_ms=2000)
        except Exception as exc:  # noqa: BLE001 - no answer: do not claim it is empty
            log.debug("end offsets of %s unavailable: %s", topic, exc)
            return False
        return bool(parts) and not any(ends.values())


def unread_events(lag: dict[str, int]) -> list[EngineEvent]:
    """``unread`` events, one per topic with messages behind (``lag``: ``topic[partition]`` -> n).

    Parameters
    ----------
    lag : dict
        Messages behind the high watermark per partition (`KafkaSource.lag`).

    Returns
    -------
    list of EngineEvent
        Kind ``unread``, reason ``lag``, ``size`` the messages left on the topic's owned partitions.
    """
    per_topic: dict[str, int] = {}
    for name, n in lag.items():
        topic = name.rsplit("[", 1)[0]
        per_topic[topic] = per_topic.get(topic, 0) + max(int(n), 0)
    return [EngineEvent("unread", None, n, "lag", f"stopped with {n} messages unread on {topic} (lag); "
                                                  "their cues are not decided")
            for topic, n in sorted(per_topic.items()) if n > 0]
