"""The closed loop around a running engine: recorder + trial writer, model watcher, their metrics.

`ClosedLoop` bundles what ``bcistream run --record --poll-interval S`` adds to the engine loop:
it wraps the source and adds a sink (the recorder's tap), owns the writer / watcher / listener
threads (all stopped by `close`), and its `tick` goes into the loop's ``on_tick`` (swaps happen
there, between batches).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from bcistream.data.profiles import Profile
from bcistream.realtime.events import EngineEvent
from bcistream.realtime.protocols import Sink, Source
from bcistream.realtime.recorder import Recorder, RecorderSink, RecordingSource
from bcistream.storage import Store
from bcistream.streamer.model_watch import ModelWatcher, SwapRecord
from bcistream.streamer.trial_writer import TrialWriter

__all__ = ["ClosedLoop", "ClosedLoopMetrics"]


class ClosedLoopMetrics:
    """Prometheus metrics of recording and hot swap, on the caller's registry.

    ``bcistream_recorded_trials_total`` (stored), ``bcistream_recorder_overflow_total``,
    ``bcistream_recorder_lost_trials_total`` (incomplete windows), ``bcistream_recorder_write_errors_total``,
    ``bcistream_recorder_queue_depth``, ``bcistream_model_swap_refusals_total``,
    ``bcistream_model_loaded_timestamp_seconds``. The model version (``bcistream_model_info``) and
    the swaps (``bcistream_events_total{kind="swap"}``) come from the engine (`EngineMetrics`):
    one family per fact.
    """

    def __init__(self, registry, namespace: str = "bcistream") -> None:
        from prometheus_client import Counter, Gauge

        ns, reg = namespace, registry
        self.recorded = Counter("recorded_trials", "Labelled trials stored", namespace=ns, registry=reg)
        self.overflow = Counter("recorder_overflow", "Trials not recorded: writer queue full",
                                namespace=ns, registry=reg)
        self.lost = Counter("recorder_lost_trials", "Cues whose window could not be recorded",
                            namespace=ns, registry=reg)
        self.write_errors = Counter("recorder_write_errors", "Failed store writes", namespace=ns,
                                    registry=reg)
        self.queue_depth = Gauge("recorder_queue_depth", "Trials waiting for the writer", namespace=ns,
                                 registry=reg)
        self.refusals = Counter("model_swap_refusals", "New models refused (profile does not fit)",
                                namespace=ns, registry=reg)
        self.loaded = Gauge("model_loaded_timestamp_seconds", "Unix time the running model was loaded",
                            namespace=ns, registry=reg)
        self._last: dict[str, int] = {}

    def _inc(self, counter, key: str, value: int) -> None:
        delta = value - self._last.get(key, 0)
        self._last[key] = value
        if delta > 0:
            counter.inc(delta)

    def model(self, version: str, when: float | None = None) -> None:
        """The engine now runs ``version`` (loaded at unix time ``when``)."""
        self.loaded.set(time.time() if when is None else when)

    def observe(self, recorder: Recorder | None, writer: TrialWriter | None,
                watcher: ModelWatcher | None) -> None:
        """Bring counters up to date."""
        if recorder is not None:
            st = recorder.stats()
            self._inc(self.overflow, "overflow", st["overflow"])
            self._inc(self.lost, "lost", st["incomplete"])
            self.queue_depth.set(recorder.out.qsize())
        if writer is not None:
            self._inc(self.recorded, "recorded", writer.written)
            self._inc(self.write_errors, "write_errors", writer.errors)
        if watcher is not None:
            ok = sum(1 for s in watcher.swaps if s.ok)
            self._inc(self.refusals, "refusals", len(watcher.swaps) - ok)


class ClosedLoop:
    """Recording and hot swap around one engine loop.

    Parameters
    ----------
    profile : Profile
        The running model's profile.
    store : Store, optional
        Where trials go (``None``: no recording).
    watcher : ModelWatcher, optional
        Hot swap (``None``: the model never changes).
    metrics : ClosedLoopMetrics, optional
    preroll_s : float
        Raw pre-roll recorded before each window.
    queue_size : int
        Bound of the recorder -> writer queue.
    version : callable, optional
        The engine's current version (for trials the engine made no decision for).
    on_event : callable, optional
        Called with each recorder/watcher event (e.g. printed on stderr).
    session : str, optional
        Session folder of the trials (default: start time + pid).
    """

    def __init__(self, profile: Profile, *, store: Store | None = None, watcher: ModelWatcher | None = None,
                 metrics: ClosedLoopMetrics | None = None, preroll_s: float = 1.0, queue_size: int = 256,
                 version: Callable[[], str | None] | None = None,
                 on_event: Callable[[EngineEvent], None] | None = None, session: str | None = None) -> None:
        self.metrics = metrics
        self.watcher = watcher
        self.on_event = on_event
        self.listeners: list[Any] = []
        self.recorder: Recorder | None = None
        self.writer: TrialWriter | None = None
        if store is not None:
            q: queue.Queue = queue.Queue(maxsize=max(1, int(queue_size)))
            self.recorder = Recorder(profile, q, preroll_s=preroll_s, version=version)
            self.writer = TrialWriter(store, q, session=session).start()
        if watcher is not None:
            watcher.start()

    def wrap_source(self, source: Source) -> Source:
        """The source the engine loop should poll (the recorder's tap when recording)."""
        return source if self.recorder is None else RecordingSource(source, self.recorder)

    def sinks(self) -> list[Sink]:
        """Extra sinks for the loop (the recorder's decision tap when recording)."""
        return [] if self.recorder is None else [RecorderSink(self.recorder)]

    def tick(self, engine) -> SwapRecord | None:
        """Call between batches (``on_tick``): apply a loaded model, update metrics, pass on events."""
        swap = self.watcher.apply(engine) if self.watcher is not None else None
        if swap is not None and swap.ok and self.metrics is not None:
            self.metrics.model(swap.new, swap.wall)
        if self.metrics is not None:
            self.metrics.observe(self.recorder, self.writer, self.watcher)
        if self.on_event is not None:
            for q in (self.recorder.events if self.recorder else None,
                      self.watcher.events if self.watcher else None):
                if q:
                    for ev in q.drain():
                        self.on_event(ev)
        return swap

    def close(self, timeout: float = 10.0) -> None:
        """Queue waiting trials, write what is queued, stop every thread."""
        for listener in self.listeners:
            listener.stop()
        if self.watcher is not None:
            self.watcher.stop(timeout)
        if self.recorder is not None:
            self.recorder.release()
        if self.writer is not None:
            self.writer.stop(timeout)
        if self.metrics is not None:
            self.metrics.observe(self.recorder, self.writer, self.watcher)
