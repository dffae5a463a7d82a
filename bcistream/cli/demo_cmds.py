"""``bcistream demo``: synthesize (or use your 2a files) → train → promote → replay live → decode → report.

Every step is what a user would run: ``train`` and ``replay`` as commands, the live engine through
the Python API ``bcistream run`` is built on (`bcistream.live.LiveSystem`); the demo only wires them
together on embedded defaults (LSL on loopback, MLflow sqlite in the working folder) and then checks
the live decisions against the offline pipeline on the same trials.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, progress_bar, settings
from bcistream.cli.data_options import ProfileOpt, TestOpt, TrainOpt, data_spec, option_args
from bcistream.cli.tables import print_table
from bcistream.errors import BcistreamError

LOOPBACK_LSL = ("[ports]\nIPv6 = disable\n[multicast]\nResolveScope = machine\n"
                "AddressesOverride = {127.0.0.1}\nInterfaces = {127.0.0.1}\nTTLOverride = 0\n"
                "[lab]\nKnownPeers = {127.0.0.1}\n[log]\nlevel = -3\n")


def _cli(args: list[str]) -> None:
    """Run a bcistream sub-command in-process; raise if it fails."""
    from bcistream.cli import main

    code = main(args)
    if code != 0:
        raise BcistreamError(f"'bcistream {args[0]}' failed (exit {code}); see its message above")


def _synthetic(folder: Path, seed: int, trials_per_class: int) -> Path:
    from bcistream.data.synth import write_dataset

    if not (folder / "A01T_raw.fif").exists() or not (folder / "A01E_raw.fif").exists():
        with progress_bar("synthesizing subject 1", total=2) as advance:
            write_dataset(folder, subjects=1, seed=seed, progress=advance,
                          n_trials_per_class=trials_per_class)
    return folder


def _broker(home: Path):
    """Start the bundled Kafka-protocol broker (tansu) on a free loopback port."""
    from bcistream.streamer.local_broker import LocalBroker

    return LocalBroker(log_dir=home).start()


def replay_warnings(log: Path) -> list[str]:
    """The ``warning:`` lines of the replay process's log (e.g. that it fell behind the pace asked):
    the replay runs as a process of its own whose output goes to the log, not to the terminal."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith("warning:")]


def next_hint(transport: str, base: str, name: str, replay_file: Path, bootstrap: str | None) -> str:
    """The demo's last line: the commands to go on with, over the transport the demo used.

    Parameters
    ----------
    transport : str
        ``lsl`` or ``kafka``.
    base, name : str
        The ``--name`` the demo trained with and the model it registered (``NAME-LABEL``).
    replay_file : Path
        The recording the demo replayed.
    bootstrap : str or None
        The Kafka servers the user gave; None when the demo ran its own broker, which is gone
        by now (the commands then use BCISTREAM_KAFKA_BOOTSTRAP).
    """
    model, file = f"models:/{name}@champion", shlex.quote(str(replay_file))
    if transport == "kafka":
        servers = f" --bootstrap {bootstrap}" if bootstrap else ""
        go_on = (f"bcistream replay {file} --to kafka{servers} --name amp1 --loop; "
                 f"bcistream run --from kafka:eeg.raw{servers} --model {model} --to stdout")
        where = "README: Kafka" + ("" if bootstrap else "; the demo's own broker has stopped: start one "
                                   "with bcistream broker, or set BCISTREAM_KAFKA_BOOTSTRAP")
    else:
        go_on = (f"bcistream replay {file} --to lsl --name amp1 --loop; "
                 f"bcistream run --from lsl:amp1 --model {model} --to stdout")
        where = "README: after make demo"
    return f"next: bcistream models --name {base}; bcistream serve; {go_on} ({where})"


@app.command()
def demo(
    data: Annotated[str | None, typer.Option(help="Your data: a BCI IV 2a folder (A0xT/A0xE + A0xE.mat), "
                                                  "a BIDS tree or moabb:NAME; default: synthesize one "
                                                  "subject.")] = None,
    train: TrainOpt = None,
    test: TestOpt = None,
    subject: Annotated[str, typer.Option(help="Subject to use from --data.")] = "1",
    profile: ProfileOpt = None,
    transport: Annotated[str, typer.Option(help="lsl (loopback) or kafka.")] = "lsl",
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers; default: start "
                                                       "the bundled local broker.")] = None,
    speed: Annotated[float, typer.Option(min=0.1, help="Replay speed (x real time).")] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic subject.")] = 0,
    trials_per_class: Annotated[int, typer.Option(min=4, max=72, help="Synthetic trials per class "
                                                                     "and session.")] = 72,
    view: Annotated[bool | None, typer.Option(help="Live terminal view (default: on a terminal).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
                 help="Pipeline parameter key=value for training, e.g. decoder=ts-lr.")] = None,
) -> None:
    """End to end on one machine: train, promote, replay the evaluation session live, decode, report."""
    from bcistream.cli.demo_report import read_decisions, summarize, write_report
    from bcistream.cli.stream_cmds import err_console, live_config, run_with_view
    from bcistream.data.loader import load_recording
    from bcistream.live import LiveSystem
    from bcistream.streamer.kafka_topics import create_topics
    from bcistream.training.datasets import plan_data
    from bcistream.training.registry import load_model
    from bcistream.training.train import model_name_for

    if transport not in ("lsl", "kafka"):
        raise BcistreamError(f"--transport: must be lsl or kafka, got {transport!r}")
    cfg = settings()
    cfg.home.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = cfg.home / "demo" / stamp
    report.mkdir(parents=True, exist_ok=True)
    if data is None and not train:
        data = str(_synthetic(cfg.data_dir / f"synthetic-seed{seed}-{trials_per_class}", seed,
                              trials_per_class))
        subject = "1"
    spec = data_spec(data, train, test, subject)
    plans = plan_data(spec, cfg.home / "cache" / "gcs")
    if len(plans) != 1:
        raise BcistreamError(f"the demo uses one subject; {spec.describe()} selects {len(plans)}")
    tests = [src for src in plans[0].test if src.path is not None]
    if len(tests) != 1:
        raise BcistreamError(f"{spec.describe()}: the demo replays one test recording file, but the "
                             f"selection has {len(plans[0].test)} (give one with --test FILE)")
    replay_file = tests[0].path
    base = f"{cfg.model_name}-demo"
    name = model_name_for(base, plans[0].label)
    uri = cfg.mlflow_uri
    console.rule("1/3 train, register and promote")
    _cli(["train", *spec.argv(), *option_args(profile=profile), "--name", base,
          *[arg for item in set_ or [] for arg in ("--set", item)]])
    champion = load_model(f"models:/{name}@champion", uri)
    evaluation = load_recording(replay_file, champion.profile)

    console.rule(f"2/3 replay {replay_file.name} over {transport} at {speed:g}x and decode it live")
    if transport == "lsl" and "LSLAPICFG" not in os.environ:
        # Loopback only: the demo must not multicast onto the lab network.
        cfg_path = cfg.home / "lsl_loopback.cfg"
        cfg_path.write_text(LOOPBACK_LSL)
        os.environ["LSLAPICFG"] = str(cfg_path.resolve())
    stream = f"bcistream-demo-{os.getpid()}"
    decisions_path = report / "decisions.jsonl"
    broker = None
    replay_log = (report / "replay.log").open("w")
    cmd = [sys.executable, "-m", "bcistream", "replay", str(replay_file), "--to", transport,
           "--name", stream, "--speed", f"{speed:g}", "--profile", profile or cfg.profile]
    live = {"model": f"models:/{name}@champion", "sinks": [f"jsonl:{decisions_path}"], "trigger": "both",
            "idle_exit": 3.0, "tracking_uri": uri, "duration": round(evaluation.duration / speed + 120)}
    replay_proc = None
    stopped_by: str | None = None
    try:
        if transport == "kafka":
            if bootstrap is None:
                broker = _broker(report)
                bootstrap = broker.bootstrap
            topic = f"demo-{stamp}"
            # Made before the engine subscribes (the replay would make them a moment later): the
            # engine warns of a missing topic, which is right for a typo but not for the demo.
            create_topics(bootstrap, {topic: 1, f"{topic}.markers": 1})
            cmd += ["--topic", topic, "--markers-topic", f"{topic}.markers", "--bootstrap", bootstrap]
            live.update(source=f"kafka:{topic}", bootstrap=bootstrap, group=f"demo-{stamp}",
                        markers_topic=f"{topic}.markers")
        else:
            cmd += ["--wait-consumer", "60"]
            live.update(source=f"lsl:{stream}", resolve_timeout=30.0)
        # The replay stays a process of its own (liblsl outlets and inlets in one process can crash
        # it at teardown); the engine runs here, through the same app API as `bcistream run`.
        def start_replay() -> subprocess.Popen:
            return subprocess.Popen(cmd, stdout=replay_log, stderr=subprocess.STDOUT)

        if transport != "kafka":  # the engine resolves the LSL stream when it starts
            replay_proc = start_replay()
        with LiveSystem(live_config(**live), say=console.print, settings=cfg) as system:

            def replay_once_joined(_decisions: object) -> None:
                # Over Kafka the replay starts once the engine owns its partition: started
                # before, the session piled up during the group join and was decided as one
                # backlog (a latency of the backlog, 80 ms at 60x, not of live decoding).
                nonlocal replay_proc
                owns = getattr(system.source, "assignment", None)
                if replay_proc is None and owns is not None and owns():
                    replay_proc = start_replay()

            stopped_by = run_with_view(system, view,
                                       on_tick=replay_once_joined if transport == "kafka" else None)
        if stopped_by is None:
            if replay_proc is None:
                raise BcistreamError("the engine never joined its Kafka consumer group, so the replay "
                                     f"was not started; see the lines above and {report}")
            replay_proc.wait(timeout=60)
            for line in replay_warnings(report / "replay.log"):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
    finally:
        if replay_proc is not None and replay_proc.poll() is None:
            replay_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                replay_proc.wait(timeout=10)
            if replay_proc.poll() is None:
                replay_proc.kill()
        replay_log.close()
        if broker is not None:
            broker.stop()

    if stopped_by is not None:
        # Stopped by the user: the cues not reached yet are not lost, and a summary of a part of
        # the replay would read like the demo's result.
        err_console.print(f"interrupted ({stopped_by}): the demo stopped during the live replay, "
                          f"before its summary; the decisions so far are in {decisions_path}",
                          soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(130)
    console.rule("3/3 summary")
    decisions = read_decisions(decisions_path)
    if not decisions:
        raise BcistreamError(f"no decisions were made; see {report / 'replay.log'}")
    summary = summarize(decisions, champion.pipeline, evaluation, champion.version)
    prof = champion.profile
    write_report(report, summary, decisions, list(prof.class_names), prof.sfreq,
                 cue_offset_s=(prof.offset_samples + prof.window_samples) / prof.sfreq)
    table = Table("measure", "value", title=f"bcistream demo — report in {report}")
    table.add_row("model version", f"{name} v{summary.model_version} (champion)")
    table.add_row("cues decided live", f"{summary.cues_decided} of {summary.cues_expected}")
    # The engine decides every cue, artifact-rejected trials too; `train` and `classify` leave those
    # out, so their accuracy is over fewer trials: say which set this is.
    table.add_row(f"online accuracy (cue-locked, live; all {summary.cue_trials} cues, "
                  "artifact-rejected trials included)", f"{summary.online_accuracy:.4f}")
    table.add_row("offline accuracy (the same trials, offline pipeline)", f"{summary.offline_accuracy:.4f}")
    table.add_row("kappa / chance 95 % bound", f"{summary.online_kappa:.3f} / {summary.chance_upper95:.3f}")
    table.add_row("information-transfer rate", f"{summary.itr_bits_per_min:.2f} bits/min "
                                               f"({summary.seconds_per_trial:.1f} s per trial)")
    table.add_row("online = offline labels", f"{summary.agreement:.1%} of {summary.cue_trials} trials")
    table.add_row("latency p50 / p99 (chunk arrival → decision, all decisions)",
                  f"{summary.latency_p50_ms:.2f} ms / {summary.latency_p99_ms:.2f} ms")
    table.add_row("decisions per second", f"{summary.decisions_per_s:.1f} ({summary.decisions} in all)")
    print_table(console, table)
    # Plain lines too, for logs and for the fresh-machine check.
    console.print(f"cues decided {summary.cues_decided}/{summary.cues_expected}; "
                  f"online accuracy {summary.online_accuracy:.4f}; offline accuracy "
                  f"{summary.offline_accuracy:.4f}; latency p99 {summary.latency_p99_ms:.2f} ms; "
                  f"model version {summary.model_version}", soft_wrap=True)
    console.print(next_hint(transport, base, name, replay_file, bootstrap if broker is None else None),
                  soft_wrap=True)
    if summary.cues_decided < summary.cues_expected:
        raise BcistreamError(
            f"only {summary.cues_decided} of {summary.cues_expected} cues of the evaluation session were "
            f"decided live: {summary.cues_expected - summary.cues_decided} cue(s) lost; see the run's "
            f"events above and {report}")
    if summary.misaligned_cues or summary.agreement < 1.0:
        raise BcistreamError(
            f"online and offline decisions disagree ({summary.agreement:.1%} agreement, "
            f"{summary.misaligned_cues} cue windows not at a cue of the recording) — this is a bug")
