"""`LiveSystem`: source → engine → sinks, metrics, run monitor, hot swaps and recording, composed
from one `LiveConfig`; it owns its threads (the loop, the /metrics server, the watchers) and stops
them. ``bcistream run`` is a thin layer over it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from bcistream.errors import BcistreamError
from bcistream.live.config import LiveConfig
from bcistream.live.plan import plan_workers, split_named, split_source
from bcistream.live.stats import LiveStats
from bcistream.realtime.protocols import Sink, Source
from bcistream.realtime.records import Decision

__all__ = ["LiveSummary", "LiveSystem", "plan_workers", "run_live"]


@dataclass(frozen=True)
class LiveSummary:
    """What a live run did (its last line on the console).

    Attributes
    ----------
    decisions : int
        Decisions written to the sinks.
    streams : int
        Streams that got at least one decision.
    latency_p50_ms, latency_p99_ms : float
        Chunk arrival → decision, over every decision of the run (NaN without decisions).
    cue_accuracy : float or None
        Accuracy of all the run's cue decisions with a known class (``cue_trials`` of them).
    coverage : str
        ``decided cues A/B, decoded samples C/D``.
    events : str
        Events by kind (gaps, refused chunks, lost cues...).
    withheld : int
        Decisions made again from re-read warm-up data that the sinks did not get (a Kafka
        partition's previous owner, or an earlier run of the group, had published them).
    """

    decisions: int
    streams: int
    latency_p50_ms: float
    latency_p99_ms: float
    cue_accuracy: float | None
    coverage: str
    events: str
    cue_trials: int = 0
    refused: dict[str, int] = field(default_factory=dict)  #: refused chunks by reason
    withheld: int = 0

    def line(self) -> str:
        """One line for people."""
        latency = ("no latency (no decision)" if self.decisions == 0 else
                   f"latency p50 {self.latency_p50_ms:.2f} ms, p99 {self.latency_p99_ms:.2f} ms")
        made = f"{self.decisions} decisions from {self.streams} stream(s)" + (
            f" ({self.withheld} of them made again from re-read data and not sent: already published)"
            if self.withheld else "")
        return (f"{made}; {latency}; {self.coverage}; "
                f"{self.events}"
                + ("" if self.cue_accuracy is None
                   else f"; cue accuracy {self.cue_accuracy:.1%} of {self.cue_trials} labelled cues"))


class LiveSystem:
    """The live decoder, composed from a `LiveConfig`.

    Parameters
    ----------
    config : LiveConfig
    pipeline : sklearn.pipeline.Pipeline, optional
        A fitted pipeline to decode with instead of loading ``config.model`` (version
        ``version``; no hot swap).
    source : Source, optional
        A source object (e.g. `bcistream.realtime.memory.MemorySource`) instead of
        ``config.source``; a source with an ``exhausted`` attribute ends the run when it is true.
    sinks : sequence of Sink
        Sinks added to those of ``config.sinks``.
    say : callable, optional
        Prints one line for people (watching, recording, swaps); default: nothing.
    settings : bcistream.settings.Settings, optional
        Defaults for the tracking URI, Kafka bootstrap and store (default: read from the environment).

    Examples
    --------
    >>> system = LiveSystem(LiveConfig(source="lsl:amp1", model="models:/bcistream-A01@champion",
    ...                                sinks=["jsonl:decisions.jsonl"], duration=60))  # doctest: +SKIP
    >>> with system:                                                                  # doctest: +SKIP
    ...     summary = system.run()
    """

    def __init__(self, config: LiveConfig, *, pipeline: Any = None, version: str = "0",
                 source: Source | None = None, sinks: Sequence[Sink] = (),
                 say: Callable[[str], None] | None = None, settings: Any = None) -> None:
        from bcistream.settings import Settings

        self.config = config
        self.say: Callable[[str], None] = say or (lambda _line: None)
        self._settings = settings or Settings()
        self._pipeline, self._version = pipeline, version
        self._source_obj, self._extra_sinks = source, list(sinks)
        if source is None and not config.source:
            raise BcistreamError("source is empty: give LiveConfig(source='lsl:NAME' or 'kafka:TOPIC') "
                                 "or a source object")
        if pipeline is None and not config.model:
            raise BcistreamError("model is empty: give LiveConfig(model='models:/NAME@ALIAS') or a pipeline")
        self.stats = LiveStats()
        self.stop_event = threading.Event()
        self.engine: Any = None
        self.monitor: Any = None
        self.source: Any = None
        self.sinks: list[Any] = []
        self.profile: Any = None
        self.metrics_url: str | None = None
        self.registry: Any = None  #: the run's prometheus CollectorRegistry (after `open`)
        self._closed_loop: Any = None
        self._remote: Any = None
        self._server: Any = None
        self._metrics: Any = None
        self._thread: threading.Thread | None = None
        self._pool: Any = None
        self._error: BaseException | None = None
        self._opened = False

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force."""
        return self.config.tracking_uri or self._settings.mlflow_uri

    def open(self) -> LiveSystem:
        """Load the model, open sinks (first: consumers may connect early), the source, the closed
        loop and /metrics. Idempotent.

        Raises
        ------
        BcistreamError
            Bad source or sink specs (before the model is loaded), unknown model, unreachable
            stream, incompatible profile.
        """
        if self._opened:
            return self
        from prometheus_client import CollectorRegistry

        from bcistream.live.closed_loop import setup_closed_loop
        from bcistream.realtime.config import EngineConfig
        from bcistream.realtime.engine import Engine
        from bcistream.realtime.metrics import EngineMetrics, source_metrics
        from bcistream.realtime.monitor import RunMonitor
        from bcistream.streamer.endpoints import (
            SINK_KINDS,
            OutletMeta,
            TransportOptions,
            open_sink,
            open_source,
        )
        from bcistream.streamer.sinks import FilteredSink

        cfg = self.config
        engine_config = EngineConfig(hop_s=cfg.hop_s, triggers=cfg.triggers)
        src_kind, src_value = ("object", "")
        if self._source_obj is None:
            src_kind, src_value = split_source(cfg.source)
        for spec in cfg.sinks:
            split_named(spec, SINK_KINDS, "sinks")
        n_workers = 1 if self._source_obj is not None else plan_workers(cfg)
        self._opened = True
        try:
            if self._pipeline is not None:
                pipeline, version, model_name = self._pipeline, self._version, "in-memory"
                from bcistream.pipeline.factory import pipeline_profile

                profile = pipeline_profile(pipeline)
            else:
                from bcistream.training.registry import load_model

                loaded = load_model(cfg.model, self.tracking_uri)
                pipeline, version, profile = loaded.pipeline, loaded.version, loaded.profile
                model_name = cfg.model
            self.profile = profile
            if cfg.classifier != "local":
                from bcistream.serving.client import RemoteClassifier

                self._remote = RemoteClassifier(cfg.classifier)
            self.engine = Engine(pipeline, version=str(version), config=engine_config,
                                 classifier=self._remote, on_unknown_version=self._on_unknown_version)
            opts = TransportOptions(bootstrap=cfg.bootstrap or self._settings.kafka_bootstrap,
                                    group=cfg.group,
                                    markers_topic=cfg.markers_topic, dead_letter_topic=cfg.dead_letter_topic,
                                    kafka_config=dict(cfg.kafka_config), resolve_timeout=cfg.resolve_timeout,
                                    skip_backlog=cfg.skip_backlog, units=cfg.units)
            meta = OutletMeta(model=model_name, version=str(version), profile=profile.name,
                              classes=tuple(str(c) for c in self.engine.model.classes))
            known = src_value.split(",") if src_kind == "lsl" and "=" not in src_value else []
            # Kafka workers write to their own sinks (each commits after them): the parent opens none.
            for spec in [] if n_workers > 1 and src_kind == "kafka" else cfg.sinks:
                self.sinks.append(open_sink(spec, opts, meta=meta, streams=known))
            if n_workers > 1:
                self._pool = _pool(cfg, n_workers, {"pipeline": pipeline, "version": version,
                                                    "profile": profile, "config": engine_config,
                                                    "opts": opts}, self.say)
                self.engine = src = self._pool  # duck-types the engine for monitor, metrics, view
            elif self._source_obj is not None:
                src = self._source_obj
            else:
                src = open_source(cfg.source, profile, opts)
            self.source = src
            if hasattr(src, "replayed"):
                self.sinks = [FilteredSink(s, src.replayed) for s in self.sinks]
            self.sinks.extend(self._extra_sinks)
            registry = CollectorRegistry()
            self.registry = registry
            self._metrics = EngineMetrics(registry)
            swap_model = cfg.model if self._pipeline is None else "in-memory"
            self._closed_loop = setup_closed_loop(
                engine=self.engine, model=swap_model, tracking_uri=self.tracking_uri, profile=profile,
                registry=registry, record=cfg.record,
                record_store=cfg.record_store or self._settings.store_url,
                record_preroll=cfg.record_preroll, poll_interval=cfg.poll_interval,
                source_spec=cfg.source if self._source_obj is None else "", bootstrap=opts.bootstrap,
                kafka_config=opts.kafka_config, updates_topic=cfg.updates_topic, say=self.say)
            self.source = self._closed_loop.wrap_source(self.source)
            self.sinks.extend(self._closed_loop.sinks())
            source_metrics(registry, self.source)
            self.monitor = RunMonitor()
            if cfg.metrics_port is not None:
                from prometheus_client import start_http_server

                self._server, _ = start_http_server(cfg.metrics_port, addr=cfg.metrics_host,
                                                    registry=registry)
                self.metrics_url = f"http://{cfg.metrics_host}:{self._server.server_port}/metrics"
        except BaseException:
            self.close()
            raise
        return self

    def _on_unknown_version(self, current: str | None):
        # The service moved to a new champion: follow it when the registry says so.
        if self._pipeline is not None or not self.config.model.startswith("models:/"):
            return None
        from bcistream.training.registry import load_model

        fresh = load_model(self.config.model, self.tracking_uri)
        return (fresh.pipeline, fresh.version) if fresh.version == current else None

    def run(self, on_tick: Callable[[list[Decision]], None] | None = None) -> LiveSummary:
        """Decode in the calling thread until a stop condition or `stop`; return the summary.

        Parameters
        ----------
        on_tick : callable, optional
            Called after every loop iteration with its decisions (e.g. a live view).
        """
        from bcistream.realtime.loop import run_loop

        self.open()
        cfg, engine, stop = self.config, self.engine, self.stop_event
        started = time.monotonic()
        idle = {"samples": 0, "since": started}

        def tick(decisions: list[Decision]) -> None:
            self._closed_loop.tick(engine)
            self.stats.add(decisions)
            now = time.monotonic()
            if cfg.idle_exit is not None:
                # Samples RECEIVED: a refused stream that keeps sending is not idle. (A worker
                # pool's parent sees no batches: its workers' decoded samples count there.)
                received = self.monitor.coverage.samples_received if self.monitor is not None else 0
                samples = max(received, int(engine.stats()["samples_in"]))
                if samples != idle["samples"]:
                    idle["samples"], idle["since"] = samples, now
                elif samples and now - idle["since"] >= cfg.idle_exit:
                    stop.set()
            if getattr(self.source, "exhausted", False):
                stop.set()
            if cfg.max_decisions is not None and self.stats.total >= cfg.max_decisions:
                stop.set()
            if cfg.duration is not None and now - started >= cfg.duration:
                stop.set()
            if on_tick is not None:
                on_tick(decisions)

        if self._pool is not None:
            self._pool.run(self.sinks, stop, tick, metrics=self._metrics, monitor=self.monitor)
        else:
            run_loop(engine, self.source, self.sinks, stop, tick, metrics=self._metrics, monitor=self.monitor)
        return self.summary()

    def start(self) -> LiveSystem:
        """Run in a background thread (owned: `stop` and `close` end it)."""
        self.open()
        if self._thread is not None:
            raise BcistreamError("this LiveSystem was already started")

        def body() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001  (re-raised by join())
                self._error = exc

        self._thread = threading.Thread(target=body, name="bcistream-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to stop (thread-safe; returns at once)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> LiveSummary:
        """Wait for a `start`-ed run to end; re-raise its error; return the summary."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the live run did not stop within {timeout} s")
        if self._error is not None:
            raise self._error
        return self.summary()

    def summary(self) -> LiveSummary:
        """What the run did so far."""
        p50, p99 = self.stats.latency_ms()
        coverage = self.monitor.coverage.line() if self.monitor is not None else "nothing decoded"
        events = self.monitor.events_line() if self.monitor is not None else "events: none"
        accuracy, labelled = self.stats.run_accuracy()
        refused: dict[str, int] = {}
        if self.monitor is not None:
            for (kind, reason), n in self.monitor.counts.items():
                if kind == "refused":
                    refused[reason] = refused.get(reason, 0) + n
        withheld = max((getattr(sink, "dropped", 0) for sink in self.sinks or ()), default=0)
        return LiveSummary(self.stats.total, len(self.stats.streams), p50, p99, accuracy,
                           coverage, events, labelled, refused, withheld)

    def close(self) -> None:
        """Stop the loop and every thread; close source, sinks, /metrics, watchers. Idempotent."""
        self.stop_event.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._closed_loop is not None:
            self._closed_loop.close()
            self._closed_loop = None
        if self.source is not None:
            with suppress(Exception):
                self.source.close()
            self.source = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for sink in self.sinks:
            with suppress(Exception):
                sink.close()
        self.sinks = []
        if self._remote is not None:
            self._remote.close()
            self._remote = None

    def __enter__(self) -> LiveSystem:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pool(config: LiveConfig, n: int, common: dict[str, Any], say: Callable[[str], None]) -> Any:
    from bcistream.workers import WorkerPool, kafka_specs, lsl_specs

    kind, value = split_source(config.source)
    if kind == "lsl":
        specs = lsl_specs([v for v in value.split(",") if v], n, **common)
    else:
        specs = kafka_specs(value, n, config.sinks, **common)
    say(f"{len(specs)} engine workers" + (f" ({', '.join(s.source for s in specs)})"
                                          if kind == "lsl" and len(specs) <= 8 else ""))
    return WorkerPool(specs)


def run_live(config: LiveConfig, **kwargs: Any) -> LiveSummary:
    """Open a `LiveSystem`, run it to a stop condition in this thread, close it; return the summary.

    ``kwargs`` go to `LiveSystem` (``pipeline=``, ``source=``, ``sinks=``, ``say=``).
    """
    with LiveSystem(config, **kwargs) as system:
        return system.run()
