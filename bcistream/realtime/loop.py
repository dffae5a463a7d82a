"""The engine loop over a source and sinks: poll, decide, write, flush, then commit (at-least-once)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from bcistream.realtime.engine import Engine
from bcistream.realtime.gctune import collect_when_idle, streaming_gc
from bcistream.realtime.monitor import RunMonitor
from bcistream.realtime.protocols import Sink, Source
from bcistream.realtime.records import Decision

__all__ = ["publish", "run_loop"]


def publish(sinks: Sequence[Sink], decisions: Sequence[Decision]) -> int:
    """Write ``decisions`` to every sink, then flush every sink (before the source commits).

    Returns the number of decisions published (0 when there were none: no sink is touched).
    """
    if not decisions:
        return 0
    for sink in sinks:
        sink.write(decisions)
    for sink in sinks:
        sink.flush()
    return len(decisions)


def run_loop(engine: Engine, source: Source, sinks: Sequence[Sink], stop: threading.Event,
             on_tick: Callable[[list[Decision]], None] | None = None, *, poll_timeout: float = 0.05,
             metrics: object | None = None, gc_threshold: int | None = 50000,
             monitor: RunMonitor | None = None) -> int:
    """Run until ``stop`` is set; return the number of decisions written.

    When ``stop`` is set, cues still waiting for their window's samples are reported as lost
    (`Engine.flush_pending`: ``cue_lost`` events with reason ``"stream-ended"`` when the source is
    ``exhausted``, else ``"run-stopped"``), and a source with an ``end_of_run()`` method queues
    what it leaves behind (`KafkaSource`: ``unread`` events, its lag); both are drained by the
    monitor before the caller prints its summary.

    Each iteration polls the source (waiting at most ``poll_timeout``), lets the engine process
    the batch, writes its decisions to every sink, flushes them, and only then commits the
    source's resume point taken right after the poll: a crash before the commit replays the batch
    (at-least-once; the engine drops samples it has already seen). The resume point is committed
    whenever it moved, also after a poll that gave nothing decodable (dead letters only): the next
    owner of a partition must not see those messages again. The loop owns no thread: call it in
    the thread that should run it, and set ``stop`` from another.

    Parameters
    ----------
    engine : Engine
    source : Source
    sinks : sequence of Sink
    stop : threading.Event
    on_tick : callable, optional
        Called after every iteration with its decisions (live view, stopping conditions).
    poll_timeout : float
        Seconds the source may wait when nothing has arrived.
    metrics : EngineMetrics, optional
        Updated after every iteration (with the events the monitor drained).
    monitor : RunMonitor, optional
        Drains the events of the engine and the source every iteration (counted, logged, passed
        to ``metrics``) and tracks coverage. Without one, events stay queued for the caller.
    gc_threshold : int or None
        While the loop runs, the garbage collector is tuned for streaming (`streaming_gc`), and
        an iteration whose poll brought nothing collects the young generation
        (`collect_when_idle`); ``None`` leaves the collector alone.
    """
    with streaming_gc(gc_threshold):
        return _loop(engine, source, sinks, stop, on_tick, poll_timeout, metrics, monitor,
                     idle_gc=gc_threshold is not None)


def _loop(engine: Engine, source: Source, sinks: Sequence[Sink], stop: threading.Event,
          on_tick: Callable[[list[Decision]], None] | None, poll_timeout: float,
          metrics: object | None, monitor: RunMonitor | None, idle_gc: bool) -> int:
    written = 0
    last_point = None
    try:
        while not stop.is_set():
            batch = source.poll(poll_timeout)
            point = source.resume_point()
            decisions: list[Decision] = []
            if batch.chunks or batch.markers:
                if monitor is not None:
                    monitor.batch(batch)
                decisions = engine.process(batch)
                written += publish(sinks, decisions)
            if batch.chunks or batch.markers or (point and point != last_point):
                source.commit(point)
                last_point = point
            events = monitor.tick(engine, source) if monitor is not None else []
            if metrics is not None:
                metrics.observe(engine, decisions, events)
            if on_tick is not None:
                on_tick(decisions)
            if idle_gc and not (batch.chunks or batch.markers):
                collect_when_idle()
        # The run is over: cues still waiting for samples will never get them. Report each
        # (cue_lost) so the summary explains every undecided cue: "stream-ended" when the source
        # ran out, "run-stopped" when the run was stopped (duration, idle, signal) with the input
        # still going. A source that knows what it leaves unread says so (`end_of_run`).
        ended = bool(getattr(source, "exhausted", False))
        lost = engine.flush_pending("stream-ended" if ended else "run-stopped")
        end_of_run = getattr(source, "end_of_run", None)
        if callable(end_of_run):
            end_of_run()
        if lost or callable(end_of_run):
            events = monitor.tick(engine, source) if monitor is not None else []
            if metrics is not None:
                metrics.observe(engine, [], events)
    finally:
        for sink in sinks:
            sink.flush()
    return written
