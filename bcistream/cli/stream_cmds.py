"""Streaming commands: ``replay`` (a recording as a live stream) and ``run`` (the live engine)."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bcistream.cli.app import app
from bcistream.cli.common import settings
from bcistream.errors import BcistreamError

err_console = Console(stderr=True)


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """Ctrl-C / SIGTERM set ``stop`` (only the main thread may install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise BcistreamError(f"--speed must be a number > 0 or 'max', got {value!r}") from None
    if not speed > 0:
        raise BcistreamError(f"--speed must be > 0 or 'max', got {value!r}")
    return speed


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="Recording (GDF/EDF/BDF/FIF) the loaders read.")],
    to: Annotated[str, typer.Option(help="lsl or kafka.")] = "lsl",
    name: Annotated[str | None, typer.Option(help="LSL stream name / Kafka stream id "
                                                  "(default: file stem).")] = None,
    topic: Annotated[str, typer.Option(help="Kafka topic of EEG chunks.")] = "eeg.raw",
    markers_topic: Annotated[str, typer.Option(help="Kafka topic of cue markers.")] = "eeg.markers",
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    speed: Annotated[str, typer.Option(help="Real-time factor, or 'max'.")] = "1",
    loop: Annotated[bool, typer.Option(help="Start over at the end until stopped.")] = False,
    chunk: Annotated[int, typer.Option(min=1, help="Samples per chunk.")] = 10,
    profile: Annotated[str | None, typer.Option(help="Profile name or TOML file.")] = None,
    wait_consumer: Annotated[float, typer.Option(help="LSL: seconds to wait for an inlet first.")] = 0.0,
    kafka_opt: Annotated[list[str] | None, typer.Option(help="Kafka client setting key=value.")] = None,
) -> None:
    """Play a recording as a live EEG stream plus a marker stream of its cues (LSL or Kafka)."""
    from bcistream.data.loader import load_recording
    from bcistream.replay import KafkaTarget, LslTarget
    from bcistream.replay import replay as play
    from bcistream.streamer.kafka_config import parse_kafka_opts

    pace = _speed(speed)
    rec = load_recording(file, profile or settings().profile)
    stream = name or file.name.split(".")[0]
    if to == "lsl":
        target = LslTarget(stream, rec, chunk=chunk)
        if wait_consumer > 0 and not target.wait_for_consumers(wait_consumer):
            raise BcistreamError(f"no LSL inlet connected to '{stream}' within {wait_consumer:g} s")
    elif to == "kafka":
        target = KafkaTarget(bootstrap or settings().kafka_bootstrap, stream, rec.sfreq, topic,
                             markers_topic, parse_kafka_opts(kafka_opt or []))
    else:
        raise BcistreamError(f"--to must be 'lsl' or 'kafka', got {to!r}")
    stop = threading.Event()
    err_console.print(f"replaying {file} as '{stream}' to {to} at "
                      f"{'max speed' if pace is None else f'{pace:g}x'} ({rec.duration:.1f} s, "
                      f"{len(rec.cues)} cues)")
    t0 = time.monotonic()
    with _stop_on_signals(stop):
        try:
            stats = play(rec, target, speed=pace, chunk=chunk, loop=loop, stop=stop)
        finally:
            # LSL outlets stay alive until the process ends (`exit_process`): destroying them
            # while inlets are connected can crash liblsl (sccn/liblsl#218).
            if not isinstance(target, LslTarget):
                target.close()
    took = time.monotonic() - t0
    err_console.print(f"sent {stats.samples} samples in {stats.chunks} chunks and {stats.cues} cues in "
                      f"{took:.2f} s ({stats.samples / rec.sfreq / max(took, 1e-9):.1f}x real time); "
                      f"pacing jitter p99 {stats.jitter_p99_ms():.3f} ms")


def _triggers(trigger: str) -> tuple[str, ...]:
    table = {"hop": ("hop",), "cue": ("cue",), "both": ("hop", "cue")}
    if trigger not in table:
        raise BcistreamError(f"--trigger must be hop, cue or both, got {trigger!r}")
    return table[trigger]


def _classifier(spec: str):
    if spec == "local":
        return None
    if not spec.startswith(("http://", "https://")):
        raise BcistreamError(f"--classifier must be 'local' or an http(s) URL, got {spec!r}")
    from bcistream.serving.client import RemoteClassifier

    return RemoteClassifier(spec)


def _n_workers(workers: int | None, source: str, *, record: bool, poll_interval: float | None,
               remote: bool) -> int:
    """How many engine processes: ``--workers``, else one per core for several LSL streams."""
    from bcistream.workers import default_workers

    kind, value = source.split(":", 1)
    n_streams = len([v for v in value.split(",") if v]) if kind == "lsl" else None
    single = record or poll_interval is not None or remote
    if workers is None:
        return 1 if single or n_streams is None else min(default_workers(), n_streams)
    if workers > 1 and single:
        raise BcistreamError("--workers > 1 cannot be combined with --record, --poll-interval or a "
                             "remote --classifier (they need one engine process); use --workers 1")
    return workers if n_streams is None else min(workers, n_streams)


def _pool(source: str, n: int, to: list[str], loaded, config, opts):
    from bcistream.workers import WorkerPool, kafka_specs, lsl_specs

    common = {"pipeline": loaded.pipeline, "version": loaded.version, "profile": loaded.profile,
              "config": config, "opts": opts}
    kind, value = source.split(":", 1)
    if kind == "lsl":
        specs = lsl_specs([v for v in value.split(",") if v], n, **common)
    else:
        specs = kafka_specs(value, n, to, **common)
    err_console.print(f"{len(specs)} engine workers" + (f" ({', '.join(s.source for s in specs)})"
                                                         if kind == "lsl" and len(specs) <= 8 else ""))
    return WorkerPool(specs)


@app.command()
def run(
    source: Annotated[str, typer.Option("--from", help="lsl:NAME[,NAME...] or kafka:TOPIC.")],
    model: Annotated[str, typer.Option(help="models:/NAME@ALIAS, models:/NAME/N or a model folder.")],
    to: Annotated[list[str] | None, typer.Option(help="stdout | jsonl:PATH | lsl:NAME | kafka:TOPIC "
                                                      "(repeatable).")] = None,
    trigger: Annotated[str, typer.Option(help="hop, cue or both.")] = "both",
    hop: Annotated[float, typer.Option(help="Seconds between sliding-window decisions.")] = 0.25,
    classifier: Annotated[str, typer.Option(help="'local' or the URL of the bcistream service.")] = "local",
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus /metrics on this port.")] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the /metrics server.")] = "127.0.0.1",
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    group: Annotated[str, typer.Option(help="Kafka consumer group.")] = "bcistream",
    markers_topic: Annotated[str, typer.Option(help="Kafka topic of cue markers ('' for none).")] = (
        "eeg.markers"),
    dead_letter_topic: Annotated[str, typer.Option(help="Kafka dead-letter topic.")] = "eeg.dead-letter",
    kafka_opt: Annotated[list[str] | None, typer.Option(help="Kafka client setting key=value.")] = None,
    resolve_timeout: Annotated[float, typer.Option(help="LSL: seconds to find each stream.")] = 5.0,
    skip_backlog: Annotated[bool, typer.Option(help="LSL: drop data buffered before connecting.")] = False,
    units: Annotated[str | None, typer.Option(help="Unit of streams that declare none (no LSL channel "
                                              "units, no Kafka 'units' header): volts, millivolts, "
                                              "microvolts. Default: the profile's units, else the first "
                                              "second of each stream is checked.")] = None,
    view: Annotated[bool | None, typer.Option(help="Live terminal view (default: on a terminal).")] = None,
    max_decisions: Annotated[int | None, typer.Option(help="Stop after this many decisions.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    idle_exit: Annotated[float | None, typer.Option(help="Stop after this many seconds without "
                                                         "samples (once data has arrived).")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: settings).")] = None,
    record: Annotated[bool, typer.Option(help="Record labelled trials (cues of a known class).")] = False,
    record_store: Annotated[str | None, typer.Option(help="Store of recorded trials: folder or "
                                                          "gs://bucket/prefix (default: settings).")] = None,
    record_preroll: Annotated[float, typer.Option(min=0.0, help="Raw seconds recorded before each "
                                                                "window.")] = 1.0,
    poll_interval: Annotated[float | None, typer.Option(help="Hot swap: check the registry alias every S "
                                                             "seconds (models:/NAME@ALIAS).")] = None,
    updates_topic: Annotated[str, typer.Option(help="Kafka topic of promotion announcements "
                                                    "('' for none).")] = "model-updates",
    workers: Annotated[int | None, typer.Option(min=1, help="Engine processes. LSL: the streams are split "
                                                "over them (default: one per core). Kafka: members of "
                                                "the consumer group (default 1).")] = None,
    lsl_proba: Annotated[str | None, typer.Option(
        help="LSL outlet NAME of class probabilities (float32, a channel per class); "
             "= --to lsl-proba:NAME.")] = None,
    lsl_labels: Annotated[str | None, typer.Option(help="LSL outlet NAME of cue-locked decided labels; "
                                                        "= --to lsl-labels:NAME.")] = None,
) -> None:
    """Decode live streams: a source, the engine, decision sinks, a live view and /metrics."""
    from prometheus_client import CollectorRegistry, start_http_server
    from rich.live import Live

    from bcistream.cli.closed_loop import setup_closed_loop
    from bcistream.cli.stream_view import LiveStats
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.realtime.loop import run_loop
    from bcistream.realtime.metrics import EngineMetrics, source_metrics
    from bcistream.realtime.monitor import RunMonitor
    from bcistream.streamer.endpoints import (
        SINK_KINDS,
        OutletMeta,
        TransportOptions,
        open_sink,
        open_source,
        split_spec,
    )
    from bcistream.streamer.kafka_config import parse_kafka_opts
    from bcistream.streamer.sinks import FilteredSink
    from bcistream.training.registry import load_model

    cfg = settings()
    config = EngineConfig(hop_s=hop, triggers=_triggers(trigger))
    # Bad --from/--to specs fail before the (slow) model load.
    src_kind, src_value = split_spec(source, ("lsl", "kafka"))
    to = [*(to or ["stdout"]), *([f"lsl-proba:{lsl_proba}"] if lsl_proba else []),
          *([f"lsl-labels:{lsl_labels}"] if lsl_labels else [])]
    for spec in to:
        split_spec(spec, SINK_KINDS)
    n_workers = _n_workers(workers, source, record=record, poll_interval=poll_interval,
                           remote=classifier != "local")
    uri = tracking_uri or cfg.mlflow_uri
    loaded = load_model(model, uri)
    remote = _classifier(classifier)

    def on_unknown_version(current: str | None):
        # The service moved to a new champion: follow it when the registry says so.
        if not model.startswith("models:/"):
            return None
        fresh = load_model(model, uri)
        return (fresh.pipeline, fresh.version) if fresh.version == current else None

    opts = TransportOptions(bootstrap=bootstrap or cfg.kafka_bootstrap, group=group,
                            markers_topic=markers_topic, dead_letter_topic=dead_letter_topic,
                            kafka_config=parse_kafka_opts(kafka_opt or []),
                            resolve_timeout=resolve_timeout, skip_backlog=skip_backlog, units=units)
    engine = Engine(loaded.pipeline, version=loaded.version, config=config, classifier=remote,
                    on_unknown_version=on_unknown_version)
    pool = None
    sinks = []
    closed = None
    src = None
    try:
        # Outlets first: a stimulus program can connect while the engine waits for the amplifier.
        meta = OutletMeta(model=model, version=str(loaded.version), profile=loaded.profile.name,
                          classes=tuple(str(c) for c in engine.model.classes))
        known = src_value.split(",") if src_kind == "lsl" and "=" not in src_value else []
        # Kafka workers write to their own sinks (each commits after them): the parent opens none.
        for spec in [] if n_workers > 1 and src_kind == "kafka" else to:
            sinks.append(open_sink(spec, opts, meta=meta, streams=known))
        if n_workers > 1:
            pool = _pool(source, n_workers, to, loaded, config, opts)
            engine = src = pool
        else:
            src = open_source(source, loaded.profile, opts)
        if hasattr(src, "replayed"):
            sinks = [FilteredSink(s, src.replayed) for s in sinks]
        registry = CollectorRegistry()
        metrics = EngineMetrics(registry)
        closed = setup_closed_loop(
            engine=engine, model=model, tracking_uri=uri, profile=loaded.profile, registry=registry,
            record=record, record_store=record_store or cfg.store_url, record_preroll=record_preroll,
            poll_interval=poll_interval, source_spec=source, bootstrap=opts.bootstrap,
            kafka_config=opts.kafka_config, updates_topic=updates_topic, say=err_console.print)
        src = closed.wrap_source(src)
        sinks.extend(closed.sinks())
        source_metrics(registry, src)
        monitor = RunMonitor()
        server = None
        if metrics_port is not None:
            server, _ = start_http_server(metrics_port, addr=metrics_host, registry=registry)
        live = LiveStats()
        stop = threading.Event()
        started = time.monotonic()

        def extra() -> dict[str, object]:
            st = engine.stats()
            return {"streams": st["streams"], "coverage": monitor.coverage.line(),
                    "events": monitor.events_line().removeprefix("events: ")}

        show = err_console.is_terminal if view is None else view
        display = Live(live.table(engine.version, extra), console=err_console, refresh_per_second=4,
                       transient=False) if show else None

        idle = {"samples": 0, "since": time.monotonic()}

        def on_tick(decisions) -> None:
            closed.tick(engine)
            live.add(decisions)
            if idle_exit is not None:
                samples = int(engine.stats()["samples_in"])
                if samples != idle["samples"]:
                    idle["samples"], idle["since"] = samples, time.monotonic()
                elif samples and time.monotonic() - idle["since"] >= idle_exit:
                    stop.set()
            if display is not None:
                display.update(live.table(engine.version, extra))
            if max_decisions is not None and live.total >= max_decisions:
                stop.set()
            if duration is not None and time.monotonic() - started >= duration:
                stop.set()

        with _stop_on_signals(stop), (display if display is not None else nullcontext()):
            if pool is not None:
                pool.run(sinks, stop, on_tick, metrics=metrics, monitor=monitor)
            else:
                run_loop(engine, src, sinks, stop, on_tick, metrics=metrics, monitor=monitor)
        if server is not None:
            server.shutdown()
        p50, p99 = live.latency_ms()
        acc = live.accuracy()
        err_console.print(f"{live.total} decisions from {len(live.streams)} stream(s); latency p50 "
                          f"{p50:.2f} ms, p99 {p99:.2f} ms; {monitor.coverage.line()}; "
                          f"{monitor.events_line()}" + ("" if acc is None else f"; cue accuracy {acc:.1%}"),
                          soft_wrap=True)
    finally:
        if closed is not None:
            closed.close()
        with suppress(Exception):
            src.close()
        for s in sinks:
            with suppress(Exception):
                s.close()
        if remote is not None:
            remote.close()
