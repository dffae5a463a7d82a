"""Streams sharded over worker processes: each one source and one engine; decisions and stats merged.

One engine process is bound by one core (the GIL): ``bcistream run --workers N`` runs N of them.

- **LSL**: the streams are split round-robin over the workers; each worker opens its own inlets,
  runs its own engine and sends its decisions to the parent, which writes them to the sinks. LSL
  has nothing to acknowledge, so the parent owning the sinks loses nothing a crash would not.
- **Kafka**: every worker is a member of the same consumer group (the broker splits the
  partitions). Each worker writes to its own sinks and commits only after they flushed
  (at-least-once, as with one engine); the parent only merges decisions for the live view and
  metrics. Only ``kafka:`` sinks are allowed then (one file or outlet per worker would not be the
  one the user asked for).

The parent merges each worker's engine statistics (sums; ``streams`` summed, ``model_version``
shared) and events, so the live view, ``/metrics`` and the final summary cover every worker.
A worker that fails stops the run with its error (no silent loss of a shard).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bcistream.errors import BcistreamError
from bcistream.realtime.events import EventQueue
from bcistream.realtime.loop import publish

__all__ = ["WorkerError", "WorkerPool", "WorkerSpec", "default_workers", "shard"]

log = logging.getLogger(__name__)

_STATS_EVERY_S = 0.25


class WorkerError(BcistreamError):
    """A worker process failed (its error message is kept)."""


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def shard(items: Sequence[str], n: int) -> list[list[str]]:
    """Round-robin ``items`` over ``min(n, len(items))`` non-empty shards (order kept in each)."""
    if n < 1:
        raise BcistreamError(f"workers must be >= 1, got {n}")
    n = min(n, len(items)) or 1
    return [list(items[i::n]) for i in range(n)]


@dataclass
class WorkerSpec:
    """What one worker runs (pickled to the child process).

    Parameters
    ----------
    source : str
        The worker's ``--from`` spec (its shard of LSL streams, or the Kafka topic).
    pipeline : object
        The fitted pipeline (sklearn), as the single-process engine gets it.
    version : str
        Model version.
    profile : Profile
    config : EngineConfig
    opts : TransportOptions
    sinks : list of str
        Sink specs the worker writes itself (Kafka); empty: decisions go to the parent only.
    """

    source: str
    pipeline: Any
    version: str
    profile: Any
    config: Any
    opts: Any
    sinks: list[str] = field(default_factory=list)


class _QueueSink:
    """Sends decisions to the parent (after the worker's own sinks: they are written first)."""

    def __init__(self, out: Any, index: int) -> None:
        self.out, self.index, self._pending = out, index, []

    def write(self, decisions: Sequence[Any]) -> None:
        self._pending.extend(decisions)

    def flush(self) -> None:
        if self._pending:
            self.out.put(("decisions", self.index, self._pending))
            self._pending = []

    def close(self) -> None:
        self.flush()


def _worker_main(index: int, spec: WorkerSpec, out: Any, stop: Any) -> None:
    """Child process: source -> engine -> (own sinks, parent); stats and events every 0.25 s."""
    from bcistream.realtime.engine import Engine
    from bcistream.realtime.loop import run_loop
    from bcistream.streamer.endpoints import open_sink, open_source
    from bcistream.streamer.sinks import FilteredSink

    src, sinks = None, []
    try:
        engine = Engine(spec.pipeline, version=spec.version, config=spec.config)
        src = open_source(spec.source, spec.profile, spec.opts)
        counted = _Counted(src)
        sinks = [open_sink(s, spec.opts) for s in spec.sinks] + [_QueueSink(out, index)]
        if hasattr(src, "replayed"):
            sinks = [FilteredSink(s, src.replayed) for s in sinks]
        out.put(("ready", index, getattr(src, "stream_ids", None)))
        halt = threading.Event()
        last = [0.0]

        def report(_decisions: Any) -> None:
            now = time.monotonic()
            if stop.is_set():
                halt.set()
            if now - last[0] >= _STATS_EVERY_S or halt.is_set():
                last[0] = now
                events = engine.events.drain() + (src.events.drain() if hasattr(src, "events") else [])
                out.put(("stats", index, counted.stats(engine), events))

        run_loop(engine, counted, sinks, halt, report, poll_timeout=0.02)
        halt.set()
        report([])  # the last stats and events (halt set: sent now)
        out.put(("done", index, None))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, with its message
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))
    finally:
        for s in sinks:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                log.debug("worker sink close failed", exc_info=True)
        if src is not None:
            try:
                src.close()
            except Exception:  # noqa: BLE001
                log.debug("worker source close failed", exc_info=True)


class _Counted:
    """A worker's source, counting what it delivers: the parent's run monitor sees no batches, so
    the received side of the coverage line (``decided cues A/B, decoded samples C/D``) comes
    from here, merged over the workers as ``received_cues`` and ``received_samples``."""

    def __init__(self, source: Any) -> None:
        from bcistream.realtime.monitor import Coverage

        self.source, self.coverage = source, Coverage()

    def poll(self, timeout: float = 0.0) -> Any:
        batch = self.source.poll(timeout)
        self.coverage.add_batch(batch)
        return batch

    def stats(self, engine: Any) -> dict[str, Any]:
        return {**engine.stats(), "received_cues": self.coverage.cues_seen,
                "received_samples": self.coverage.samples_received}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


def _merge(stats: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for st in stats:
        for key, value in st.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                if isinstance(value, dict):
                    merged = out.setdefault(key, {})
                    for k, v in value.items():
                        merged[k] = merged.get(k, 0) + v
                else:
                    out.setdefault(key, value)
                continue
            out[key] = out.get(key, 0) + value
    return out


class WorkerPool:
    """N engine processes; duck-types the engine for `RunMonitor`, `EngineMetrics` and the view.

    Parameters
    ----------
    specs : sequence of WorkerSpec
        One per worker.
    start_timeout : float
        Seconds each worker may take to open its source.

    Raises
    ------
    WorkerError
        A worker failed to start (its message says why).
    """

    def __init__(self, specs: Sequence[WorkerSpec], start_timeout: float = 120.0) -> None:
        from bcistream.realtime.engine import Engine

        # Every key the engine reports, zeroed: the merged stats have them before the first report.
        fresh = Engine(specs[0].pipeline, version=specs[0].version, config=specs[0].config).stats()
        self._zero = {k: (0 if isinstance(v, int | float) and not isinstance(v, bool) else
                          {} if isinstance(v, dict) else v) for k, v in fresh.items()}
        ctx = mp.get_context("spawn")  # no fork of a process holding liblsl / Kafka threads
        self._queue = ctx.Queue()
        self._stop = ctx.Event()
        self._stats: list[dict] = [{} for _ in specs]
        self._early: deque[tuple] = deque()
        self.events = EventQueue()
        self.version = specs[0].version if specs else ""
        self.stream_ids: list[str] = []
        self._done: set[int] = set()
        self._procs = [ctx.Process(target=_worker_main, args=(i, s, self._queue, self._stop),
                                   name=f"bcistream-worker-{i}", daemon=True) for i, s in enumerate(specs)]
        for p in self._procs:
            p.start()
        ready: set[int] = set()
        deadline = time.monotonic() + start_timeout
        try:
            while len(ready) < len(self._procs):
                msg = self._get(deadline)
                kind, index, payload = msg[:3]
                if kind == "ready":
                    ready.add(index)
                    self.stream_ids.extend(payload or [])
                elif kind == "error":
                    raise WorkerError(f"worker {index} failed to start: {payload}")
                else:
                    # A worker ready early already decides while others open their streams:
                    # its decisions and stats are kept for the first poll (they were dropped).
                    self._early.append(msg)
        except BaseException:
            self.close()
            raise

    def _get(self, deadline: float) -> tuple:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                dead = [i for i, p in enumerate(self._procs) if not p.is_alive()]
                raise WorkerError(f"workers did not start in time (exited: {dead})")
            try:
                return self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                for i, p in enumerate(self._procs):
                    if not p.is_alive() and i not in self._done:
                        raise WorkerError(f"worker {i} exited with code {p.exitcode}") from None

    def stats(self) -> dict[str, object]:
        """Every worker's engine statistics, summed."""
        return {**self._zero, **_merge(self._stats)}

    def poll(self, timeout: float) -> list[Any]:
        """Decisions the workers sent within ``timeout`` s (stats and events are taken in passing)."""
        decisions: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = (self._early.popleft() if self._early else
                       self._queue.get(timeout=max(deadline - time.monotonic(), 0.0)
                                       if not decisions else 0.0))
            except queue.Empty:
                self._check_alive()
                return decisions
            kind, index = msg[0], msg[1]
            if kind == "decisions":
                decisions.extend(msg[2])
            elif kind == "stats":
                self._stats[index] = msg[2]
                self.events.extend(msg[3])
            elif kind == "done":
                self._done.add(index)
            elif kind == "error":
                self._done.add(index)
                raise WorkerError(f"worker {index} failed: {msg[2]}")

    def _check_alive(self) -> None:
        for i, p in enumerate(self._procs):
            if i not in self._done and not p.is_alive():
                self._done.add(i)
                raise WorkerError(f"worker {i} exited with code {p.exitcode}")

    def run(self, sinks: Sequence[Any], stop: threading.Event,
            on_tick: Callable[[list[Any]], None] | None = None, *, metrics: object | None = None,
            monitor: object | None = None, poll_timeout: float = 0.05) -> int:
        """The parent's loop: merged decisions to ``sinks``, stats/events to monitor and metrics."""
        written = 0
        while not stop.is_set():
            decisions = self.poll(poll_timeout)
            written += publish(sinks, decisions)
            events = monitor.tick(self) if monitor is not None else []
            if metrics is not None:
                metrics.observe(self, decisions, events)
            if on_tick is not None:
                on_tick(decisions)
        self._finish(sinks, metrics, monitor)
        return written

    def _finish(self, sinks: Sequence[Any], metrics: object | None, monitor: object | None) -> None:
        """Stop the workers and take what they still send (their last decisions and stats)."""
        self._stop.set()
        deadline = time.monotonic() + 30
        while len(self._done) < len(self._procs) and time.monotonic() < deadline:
            try:
                decisions = self.poll(0.2)
            except WorkerError as exc:
                log.warning("%s", exc)
                continue
            if decisions:
                for sink in sinks:
                    sink.write(decisions)
                for sink in sinks:
                    sink.flush()
            events = monitor.tick(self) if monitor is not None else []
            if metrics is not None:
                metrics.observe(self, decisions, events)

    def close(self) -> None:
        """Stop every worker (terminate those that do not stop within 10 s)."""
        self._stop.set()
        for p in self._procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)


def lsl_specs(names: Sequence[str], n: int, **common: Any) -> list[WorkerSpec]:
    """One `WorkerSpec` per shard of LSL stream selectors ``names``."""
    return [WorkerSpec(source="lsl:" + ",".join(part), **common) for part in shard(names, n)]


def kafka_specs(topic: str, n: int, sinks: Sequence[str], **common: Any) -> list[WorkerSpec]:
    """``n`` consumer-group members on ``topic``, each writing to ``sinks`` (``kafka:`` only)."""
    bad = [s for s in sinks if not s.startswith("kafka:")]
    if bad:
        raise BcistreamError(f"with Kafka and more than one worker every --to must be kafka:TOPIC (each "
                             f"worker commits after its own sinks); got {', '.join(bad)}")
    return [WorkerSpec(source=f"kafka:{topic}", sinks=list(sinks), **common) for _ in range(n)]

