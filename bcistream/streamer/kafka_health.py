"""Lag and stall watch of one Kafka consumer: a consumer that stops moving says so, then recovers.

Why: the bundled broker (tansu) stops reading its log when ``fetch_max_wait_ms`` runs out and
answers with what it has — and reading one record batch costs it time that grows with the number
of batches in the partition. A replay that sends one record per batch crosses 5 ms at ~10 000
batches; from then on EVERY fetch at the consumer's position comes back empty, with no error and a
high watermark that keeps growing: the consumer stalls silently. Raising ``fetch_max_wait_ms``
(and re-fetching) is what makes it read again, so that is the recovery; the cost — a fetch at the
head waits up to that long, tansu not waking a waiting fetch — is paid only after a stall.

A position beyond the high watermark means the log was recreated or lost its tail (a broker
restarted without durable storage, or before it flushed): the caller decides where to go back to.

Stalls and truncations are returned as events and not logged here: the run's event monitor
(`bcistream.realtime.monitor`, logger ``bcistream.events``) logs and counts every event once.

`poll_in_slices` works around a race in kafka-python 3.0's fetcher (measured with 3.0.12): when a
fetch completes just as ``poll`` looks for one in flight, ``poll`` finds none, takes itself for
idle and sleeps for its whole timeout (up to ``retry_backoff_ms``, 100 ms) before fetching again.
It happened ~50 times in 30 s of a real-time stream, each time delaying the next chunk by up to
the poll timeout (50 ms in ``run``): the tail of the Kafka latency. Polling in slices of one fetch
wait bounds that sleep; every slice costs kafka-python a few thread hand-offs, so shorter slices
cost CPU (measured on one idle stream: 0.25 core unsliced, 0.34 with 5 ms, 0.60 with 2 ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bcistream.realtime.events import EngineEvent

__all__ = ["BrokerProbe", "FetchWatch", "poll_in_slices"]


def poll_in_slices(consumer: Any, timeout_s: float, slice_ms: int | None = None) -> dict:
    """``consumer.poll`` for up to ``timeout_s`` seconds, in waits of at most ``slice_ms``.

    ``slice_ms`` defaults to the consumer's ``fetch_max_wait_ms`` (at least 1): a normal fetch
    completes within about one slice. Returns the first non-empty result
    (``{TopicPartition: [ConsumerRecord, ...]}``), or ``{}`` once ``timeout_s`` has passed. See the
    module docstring for why.
    """
    if slice_ms is None:
        slice_ms = max(1, int(consumer.config.get("fetch_max_wait_ms", 5)))
    deadline = time.monotonic() + max(0.0, timeout_s)
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        got = consumer.poll(timeout_ms=max(0, min(left_ms, slice_ms)))
        if got or left_ms <= slice_ms:
            return got


def _name(tp: Any) -> str:
    return f"{tp.topic}[{tp.partition}]"


class FetchWatch:
    """Per-partition lag (high watermark − position) and "lag > 0, no progress" detection.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
    stall_s : float
        Seconds without progress while behind before recovering.
    max_wait_cap_ms : int
        ``fetch_max_wait_ms`` is doubled on each stall up to this.
    check_every_s : float
        Seconds between checks (the check asks the client for positions).
    on_truncated : callable, optional
        ``f(tp, position, high_watermark)`` when the position is past the end of the log; returns
        the offset to seek to (``None``: leave it).
    clock : callable
        Monotonic clock (injectable for tests).
    """

    def __init__(self, consumer: Any, *, stall_s: float = 1.0, max_wait_cap_ms: int = 1000,
                 check_every_s: float = 0.2,
                 on_truncated: Callable[[Any, int, int], int | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.stall_s = float(stall_s)
        self.max_wait_cap_ms = int(max_wait_cap_ms)
        self.check_every_s = float(check_every_s)
        self.on_truncated = on_truncated
        self._clock = clock
        self.lag: dict[str, int] = {}  #: "topic[partition]" -> messages behind
        self.stalls = 0
        self._since: dict[Any, tuple[int, float]] = {}
        self._checked = -1e9

    @property
    def fetch_max_wait_ms(self) -> int | None:
        """The consumer's current ``fetch_max_wait_ms`` (None when the client hides it)."""
        cfg = getattr(getattr(self.consumer, "_fetcher", None), "config", None)
        return None if cfg is None else int(cfg.get("fetch_max_wait_ms", 0))

    def _raise_wait(self) -> int | None:
        # kafka-python reads the fetcher's config for every request it builds; there is no public
        # setter, and a new consumer would re-join the group (a rebalance) just to change it.
        cfg = getattr(getattr(self.consumer, "_fetcher", None), "config", None)
        if cfg is None:
            return None
        new = min(max(2 * int(cfg.get("fetch_max_wait_ms", 5)), 10), self.max_wait_cap_ms)
        cfg["fetch_max_wait_ms"] = new
        self.consumer.config["fetch_max_wait_ms"] = new
        return new

    def _position(self, tp: Any) -> int | None:
        # The client's own fetch position, read without a network round trip (the public
        # ``position()`` may first refresh committed offsets from the coordinator).
        try:
            state = self.consumer._subscription.assignment[tp].position
            return None if state is None else int(state.offset)
        except (AttributeError, KeyError, TypeError):
            try:
                got = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # noqa: BLE001 - no position yet: nothing to judge
                return None
            return None if got is None else int(got)

    def forget(self, tps: set) -> None:
        """Stop watching partitions (revoked)."""
        for tp in tps:
            self._since.pop(tp, None)
            self.lag.pop(_name(tp), None)

    def check(self, force: bool = False) -> list[EngineEvent]:
        """Update lags; recover stalled or truncated partitions; return the events.

        At most once per ``check_every_s`` unless ``force`` (the end of a run: its last lags).
        """
        now = self._clock()
        if not force and now - self._checked < self.check_every_s:
            return []
        self._checked = now
        events: list[EngineEvent] = []
        for tp in list(self.consumer.assignment()):
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            pos = self._position(tp)
            if pos is None:
                continue
            lag = int(high) - pos
            self.lag[_name(tp)] = max(lag, 0)
            if lag < 0:
                events.extend(self._truncated(tp, pos, int(high)))
                continue
            last = self._since.get(tp)
            if last is None or last[0] != pos or lag == 0:
                self._since[tp] = (pos, now)
                continue
            if now - last[1] >= self.stall_s:
                events.append(self._recover(tp, pos, lag, now - last[1]))
                self._since[tp] = (pos, now)
        return events

    def _recover(self, tp: Any, pos: int, lag: int, idle: float) -> EngineEvent:
        self.stalls += 1
        wait = self._raise_wait()
        self.consumer.seek(tp, pos)  # drop the fetch state; the next fetch starts afresh
        detail = (f"{_name(tp)}: {lag} messages behind and no progress for {idle:.1f} s at offset "
                  f"{pos}; re-fetching" + (f" with fetch_max_wait_ms={wait}" if wait else ""))
        return EngineEvent("stall", None, lag, "no-progress", detail)

    def _truncated(self, tp: Any, pos: int, high: int) -> list[EngineEvent]:
        to = self.on_truncated(tp, pos, high) if self.on_truncated is not None else None
        if to is not None:
            self.consumer.seek(tp, to)
            self._since.pop(tp, None)
        detail = (f"{_name(tp)}: position {pos} is past the end of the log ({high}): the topic was "
                  f"recreated or lost its tail" + (f"; reading again from offset {to}" if to is not None
                                                   else ""))
        return [EngineEvent("log_truncated", None, pos - high, "position-past-end", detail)]


class BrokerProbe:
    """Says when the broker stops answering, and when it answers again, while no data comes.

    kafka-python retries a lost broker by itself and only logs it; without this a run whose broker
    went away ended with ``events: none`` and no data. After ``idle_s`` without a record, one
    end-offsets request (``timeout_s``) asks the broker about the owned partitions (or partition 0
    of ``topic`` while none is owned), again every ``idle_s`` while nothing comes.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
    topic : str
        The data topic (asked about while no partition is owned).
    idle_s : float
        Seconds without data before a probe, and between probes.
    timeout_s : float
        How long a probe waits for the answer (the poll loop waits with it).
    clock : callable
        Monotonic clock (injectable for tests).
    """

    def __init__(self, consumer: Any, topic: str, idle_s: float = 2.0, timeout_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.topic = topic
        self.idle_s = float(idle_s)
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._quiet_since = clock()
        self._down_since: float | None = None

    @property
    def down(self) -> bool:
        """The last probe got no answer (and no data came since)."""
        return self._down_since is not None

    def check(self, got_data: bool, owned: set, force: bool = False) -> list[EngineEvent]:
        """Events for this poll: ``broker_unreachable`` once per outage, then ``broker_back``.

        ``force`` probes now even if data came less than ``idle_s`` ago (a stalled consumer).
        """
        now = self._clock()
        if not got_data and not force and now - self._quiet_since < self.idle_s:
            return []
        answered = True if got_data and not force else self._answers(owned)
        self._quiet_since = now
        if answered is None:
            return []
        if not answered:
            if self._down_since is not None:
                return []
            self._down_since = now
            return [EngineEvent("broker_unreachable", None, 0, "no-answer",
                                f"the Kafka broker did not answer within {self.timeout_s:g} s: nothing "
                                "is read while it is away; the run waits for it")]
        if self._down_since is None:
            return []
        away, self._down_since = now - self._down_since, None
        return [EngineEvent("broker_back", None, 0, "answered",
                            f"the Kafka broker answers again (away for about {away:.0f} s)")]

    def _answers(self, owned: set) -> bool | None:
        """True: answered; False: no answer in time; None: cannot tell."""
        from kafka import TopicPartition, errors

        # NoBrokersAvailable is kafka-python 2's name for it (3 raises a timeout).
        unanswered = tuple(getattr(errors, name) for name in
                           ("KafkaTimeoutError", "KafkaConnectionError", "NoBrokersAvailable")
                           if hasattr(errors, name))
        tps = sorted(owned) or [TopicPartition(self.topic, 0)]
        try:
            self.consumer.end_offsets(tps, timeout_ms=max(1, int(self.timeout_s * 1000)))
        except unanswered:
            return False
        except errors.KafkaError:  # an answer (say, a topic not there yet): the broker is up
            return True
        except Exception:  # noqa: BLE001 - no judgement from a client quirk
            return None
        return True
