"""Streaming commands: ``replay`` (a recording as a live stream) and ``run`` (the live engine)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bcistream.cli.app import app
from bcistream.cli.common import port_in_use, settings
from bcistream.errors import BcistreamError

if TYPE_CHECKING:
    from collections.abc import Callable

    from bcistream.replay import ReplayStats

err_console = Console(stderr=True)


@contextmanager
def _stop_on_signals(stop: threading.Event):
    """Ctrl-C / SIGTERM set ``stop`` (only the main thread may install handlers).

    Yields a list that receives the name of each signal that came (``"SIGINT"``), so a caller can
    tell a stop it asked for from one the user asked for.
    """
    came: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        came.append(signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield came
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise BcistreamError(f"--speed: must be a number > 0 or 'max', got {value!r}") from None
    if not speed > 0:
        raise BcistreamError(f"--speed: must be > 0 or 'max', got {value!r}")
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
    kafka_opt: Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE",
                                                        help="Kafka client setting key=value.")] = None,
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
        raise BcistreamError(f"--to: must be 'lsl' or 'kafka', got {to!r}")
    stop = threading.Event()
    err_console.print(f"replaying {file} as '{stream}' to {to} at "
                      f"{'max speed' if pace is None else f'{pace:g}x'} ({rec.duration:.1f} s, "
                      f"{len(rec.cues)} cues)")
    with _stop_on_signals(stop) as came:
        try:
            stats = play(rec, target, speed=pace, chunk=chunk, loop=loop, stop=stop,
                         on_chunk=_warn_when_behind())
        finally:
            # LSL outlets stay alive until the process ends (`exit_process`): destroying them
            # while inlets are connected can crash liblsl (sccn/liblsl#218).
            if not isinstance(target, LslTarget):
                target.close()
    stopped = f"stopped by {came[0]} after it " if came else ""
    err_console.print(stopped + _replay_summary(stats), soft_wrap=True)


#: What to do about a replay that cannot keep its pace.
_BEHIND_HINT = "lower --speed, or --speed max to send as fast as this machine and transport can"


def _warn_when_behind() -> Callable[[ReplayStats], None]:
    """An ``on_chunk`` callback that says once, while the replay runs, that it fell behind."""
    warned = []

    def check(stats: ReplayStats) -> None:
        if not warned and stats.behind():
            warned.append(True)
            err_console.print(f"warning: replay is falling behind: {stats.pace()} (chunks leave "
                              f"{stats.late_s:.1f} s late); {_BEHIND_HINT}", soft_wrap=True)

    return check


def _replay_summary(stats: ReplayStats) -> str:
    """The replay's last line: what was sent, the speed achieved against the speed asked."""
    sent = (f"sent {stats.samples} samples in {stats.chunks} chunks and {stats.cues} cues in "
            f"{stats.wall_s:.2f} s ({stats.pace()})")
    if stats.behind():
        return (f"{sent}; the replay fell behind the pace asked (chunks up to {stats.max_late_s:.1f} s "
                f"late); {_BEHIND_HINT}")
    return f"{sent}; pacing jitter p99 {stats.jitter_p99_ms():.3f} ms"


#: ``run`` option → `LiveConfig` field, where the names differ (for rephrasing library errors).
_FLAGS = {"source": "--from", "sinks": "--to", "hop_s": "--hop", "kafka_config": "--kafka-opt"}


def _flag(field: str) -> str:
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def live_config(**fields: object):
    """A `LiveConfig` from CLI values; its refusals become one line naming the options
    (``--hop: must be > 0, got 0.0; --workers: must be >= 1, got 0``)."""
    from bcistream.errors import ConfigError
    from bcistream.live import LiveConfig

    try:
        return LiveConfig(**fields)
    except ConfigError as exc:
        raise BcistreamError("; ".join(f"{_flag(field)}: {text}" if field else text
                                       for field, text in exc.problems)) from None


def run_with_view(system, view: bool | None,
                  on_tick: Callable[[list], None] | None = None) -> str | None:
    """Run a `LiveSystem` to its end with the live terminal view; Ctrl-C / SIGTERM stop it cleanly.

    ``on_tick`` is called after every loop iteration with its decisions (after the view).
    Returns the name of the signal that stopped the run (``"SIGINT"``, ``"SIGTERM"``), or None.
    """
    from rich.live import Live

    engine = system.engine

    def extra() -> dict[str, object]:
        st = engine.stats()
        return {"streams": st["streams"], "coverage": system.monitor.coverage.line(),
                "events": system.monitor.events_line().removeprefix("events: ")}

    show = err_console.is_terminal if view is None else view
    display = Live(system.stats.table(engine.version, extra), console=err_console, refresh_per_second=4,
                   transient=False) if show else None

    def tick(decisions) -> None:
        if display is not None:
            display.update(system.stats.table(engine.version, extra))
        if on_tick is not None:
            on_tick(decisions)

    with _stop_on_signals(system.stop_event) as came, (display if display is not None else nullcontext()):
        summary = system.run(tick)
    err_console.print(summary.line(), soft_wrap=True)
    if summary.decisions == 0 and summary.refused:
        # Data came and was refused (units, channels, ...): the run failed, not an idle success.
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(summary.refused.items()))
        raise BcistreamError(f"no decisions: chunks were refused ({reasons}); the "
                             "events above say why and how to fix it")
    return came[0] if came else None


@app.command()
def run(
    source: Annotated[str, typer.Option("--from", help="lsl:NAME[,NAME...] or kafka:TOPIC.")],
    model: Annotated[str, typer.Option(help="models:/NAME@ALIAS, models:/NAME/N or a model folder.")],
    to: Annotated[list[str] | None, typer.Option(metavar="SINK", help="stdout | jsonl:PATH | kafka:TOPIC | "
                                                      "lsl:NAME | lsl-proba:NAME | "
                                                      "lsl-labels:NAME (repeatable).")] = None,
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
    kafka_opt: Annotated[list[str] | None, typer.Option(metavar="KEY=VALUE",
                                                        help="Kafka client setting key=value.")] = None,
    resolve_timeout: Annotated[float, typer.Option(help="LSL: seconds to find each stream.")] = 5.0,
    skip_backlog: Annotated[bool, typer.Option(help="LSL: drop data buffered before connecting.")] = False,
    units: Annotated[str | None, typer.Option(help="Unit of streams that declare none (no LSL channel "
                                              "units, no Kafka 'units' header): volts, millivolts, "
                                              "microvolts. Default: the profile's units, else the first "
                                              "second of each stream is checked.")] = None,
    view: Annotated[bool | None, typer.Option(help="Live terminal view (default: on a terminal).")] = None,
    max_decisions: Annotated[int | None, typer.Option(
        help="Stop once this many decisions are made (the batch reaching it is published whole).")] = None,
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
    from bcistream.live import LiveSystem
    from bcistream.streamer.kafka_config import parse_kafka_opts

    if trigger not in ("hop", "cue", "both"):
        raise BcistreamError(f"--trigger: must be hop, cue or both, got {trigger!r}")
    if workers is not None and workers > 1 and (record or poll_interval is not None or classifier != "local"):
        raise BcistreamError("--workers > 1 cannot be combined with --record, --poll-interval or a remote "
                             "--classifier (they need one engine process); use --workers 1")
    if metrics_port is not None and port_in_use(metrics_host, metrics_port):
        raise BcistreamError(f"--metrics-port {metrics_port}: port in use on {metrics_host}; choose "
                             "another --metrics-port")
    sinks = [*(to or ["stdout"]), *([f"lsl-proba:{lsl_proba}"] if lsl_proba else []),
             *([f"lsl-labels:{lsl_labels}"] if lsl_labels else [])]
    config = live_config(
        source=source, model=model, sinks=sinks, trigger=trigger, hop_s=hop, classifier=classifier,
        metrics_port=metrics_port, metrics_host=metrics_host, bootstrap=bootstrap, group=group,
        markers_topic=markers_topic, dead_letter_topic=dead_letter_topic,
        kafka_config=parse_kafka_opts(kafka_opt or []), resolve_timeout=resolve_timeout,
        skip_backlog=skip_backlog, units=units, max_decisions=max_decisions, duration=duration,
        idle_exit=idle_exit, tracking_uri=tracking_uri, record=record, record_store=record_store,
        record_preroll=record_preroll, poll_interval=poll_interval, updates_topic=updates_topic,
        workers=workers)
    with LiveSystem(config, say=err_console.print, settings=settings()) as system:
        run_with_view(system, view)
