"""What a live run saw: every event of the engine and its source, and the run's coverage.

`RunMonitor` is fed by `bcistream.realtime.loop.run_loop` after every iteration. It drains the
event queues of the engine and of the source (any object with an ``events`` `EventQueue`), counts
them per ``(kind, reason)`` — generically, so a new event kind shows up without code changes —,
logs them with a per-kind rate limit, and keeps the counts the coverage line needs: cues seen vs.
cues decided, samples received vs. samples decoded.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable

from bcistream.realtime.events import EngineEvent
from bcistream.realtime.protocols import Batch

__all__ = ["Coverage", "RunMonitor"]

log = logging.getLogger("bcistream.events")

#: Kinds that are routine (logged at DEBUG); everything else is a WARNING, new kinds included.
QUIET_KINDS = frozenset({"duplicate", "assigned"})


class Coverage:
    """Cues and samples a run saw and decided (plain counters, see `RunMonitor.coverage`).

    Attributes
    ----------
    cues_seen : int
        Markers the source delivered to the engine.
    cues_ignored : int
        Of which no cue: values the model's profile maps to no class, and rejection markers
        (the engine's ``markers_unmapped`` + ``markers_rejected``).
    cues_decided : int
        Cue-locked decisions made.
    cues_lost : int
        Cues the engine reported as not decidable (``cue_lost`` events).
    samples_received : int
        Samples in the chunks the source delivered (re-reads and duplicates included).
    samples_decoded : int
        Samples the engine accepted into its filters.
    unread : list of str
        What the source left unread when the run stopped (``unread`` events, e.g. a Kafka
        consumer's lag): said in `line`, since the counts above cover only what arrived.
    """

    def __init__(self) -> None:
        self.cues_seen = 0
        self.cues_ignored = 0
        self.cues_decided = 0
        self.cues_lost = 0
        self.samples_received = 0
        self.samples_decoded = 0
        self.unread: list[str] = []

    @property
    def cues_undecided(self) -> int:
        """Cues seen but not decided (lost, or still waiting for their window)."""
        return max(self.cues_seen - self.cues_ignored - self.cues_decided, 0)

    def add_batch(self, batch: Batch) -> None:
        """Count what a source delivered: its markers and the samples of its chunks."""
        self.cues_seen += len(batch.markers)
        self.samples_received += sum(int(getattr(c.data, "shape", (0, 0))[-1]) for c in batch.chunks)

    def line(self) -> str:
        """``decided cues 67/67, decoded samples 166481/166481`` (then what was left unread, if any:
        ``; stopped with 5032 messages unread on eeg.raw (lag); their cues are not decided``)."""
        return (f"decided cues {self.cues_decided}/{self.cues_seen - self.cues_ignored}, decoded samples "
                f"{self.samples_decoded}/{self.samples_received}"
                + "".join(f"; {text}" for text in self.unread))


class RunMonitor:
    """Drains, counts and logs events; tracks coverage (see the module docstring).

    Parameters
    ----------
    log_interval_s : float
        At most one log line per event kind in this many seconds; the lines in between are
        counted and summarised in the next one ("... and 41 more").
    keep : int
        Recent events kept for the live view.
    on_events : callable, optional
        Called with each non-empty list of drained events (e.g. Prometheus counters).
    clock : callable
        Monotonic clock in seconds (injectable for tests).
    """

    def __init__(self, log_interval_s: float = 5.0, keep: int = 20,
                 on_events: Callable[[list[EngineEvent]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log_interval_s = float(log_interval_s)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.recent: deque[EngineEvent] = deque(maxlen=keep)
        self.coverage = Coverage()
        self.on_events = on_events
        self._clock = clock
        self._last_log: dict[str, float] = {}
        self._muted: Counter[str] = Counter()

    # -- feeding ------------------------------------------------------------------------------
    def batch(self, batch: Batch) -> None:
        """Account for what the source delivered."""
        self.coverage.add_batch(batch)

    def tick(self, engine: object, source: object | None = None) -> list[EngineEvent]:
        """Drain the events of ``engine`` and ``source``; update coverage; return the events."""
        events: list[EngineEvent] = []
        for owner in (engine, source):
            queue = getattr(owner, "events", None)
            if queue is not None and hasattr(queue, "drain"):
                events.extend(queue.drain())
        stats = engine.stats() if hasattr(engine, "stats") else {}
        self.coverage.cues_decided = int(stats.get("cue_decisions", self.coverage.cues_decided))
        self.coverage.cues_ignored = (int(stats.get("markers_unmapped", 0))
                                      + int(stats.get("markers_rejected", 0)))
        self.coverage.samples_decoded = int(stats.get("samples_in", self.coverage.samples_decoded))
        if "received_samples" in stats:  # a worker pool: its workers counted what they received
            self.coverage.samples_received = int(stats["received_samples"])
            self.coverage.cues_seen = int(stats.get("received_cues", 0))
        if events:
            self.record(events)
        return events

    def record(self, events: Iterable[EngineEvent]) -> None:
        """Count, keep and log ``events`` (also usable for events of other components)."""
        events = list(events)
        for ev in events:
            self.counts[(ev.kind, ev.reason)] += 1
            if ev.kind == "cue_lost":
                self.coverage.cues_lost += 1
            elif ev.kind == "unread":
                self.coverage.unread.append(ev.detail)
            self.recent.append(ev)
            self._log(ev)
        if self.on_events is not None and events:
            self.on_events(events)

    def _log(self, ev: EngineEvent) -> None:
        level = logging.DEBUG if ev.kind in QUIET_KINDS else logging.WARNING
        now = self._clock()
        last = self._last_log.get(ev.kind)
        if last is not None and now - last < self.log_interval_s:
            self._muted[ev.kind] += 1
            return
        self._last_log[ev.kind] = now
        more = self._muted.pop(ev.kind, 0)
        where = f" stream {ev.stream_id}" if ev.stream_id is not None else ""
        log.log(level, "%s%s%s: %s%s", ev.kind, f" ({ev.reason})" if ev.reason else "", where,
                ev.detail or f"{ev.size} samples",
                f" (and {more} more {ev.kind} event(s) in the last {self.log_interval_s:g} s)"
                if more else "")

    # -- reading ------------------------------------------------------------------------------
    def by_kind(self) -> dict[str, int]:
        """Event counts per kind, most frequent first."""
        out: Counter[str] = Counter()
        for (kind, _reason), n in self.counts.items():
            out[kind] += n
        return dict(out.most_common())

    def events_line(self, skip: Iterable[str] = QUIET_KINDS) -> str:
        """``events: classifier 12, cue_lost 3`` (``events: none`` when nothing happened)."""
        parts = [f"{k} {n}" for k, n in self.by_kind().items() if k not in set(skip)]
        return "events: " + (", ".join(parts) if parts else "none")
