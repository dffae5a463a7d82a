"""``bcistream retrain``: base data + recorded trials -> challenger -> the gate; once or on a schedule."""

from __future__ import annotations

import re
import threading
from typing import Annotated

import typer

from bcistream.cli.app import app
from bcistream.cli.common import console, port_in_use, settings
from bcistream.cli.k8s_cmds import (
    DryRunOption,
    ImageOption,
    LogsOption,
    NamespaceOption,
    OnOption,
    OverlayOption,
    run_on_k8s,
)
from bcistream.errors import BcistreamError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_every(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``1d`` -> seconds (> 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise BcistreamError(f"--every: must look like 90s, 15m, 1h or 1d, got '{text}'")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _print(outcome) -> None:
    colour = {"promoted": "green", "refused": "yellow", "error": "red"}.get(outcome.result, "cyan")
    counts = (f"{outcome.n_recorded} recorded ({outcome.n_new} new): trained on {outcome.n_base} base + "
              f"{outcome.n_train_recorded} recorded, judged on the {outcome.n_heldout} most recent"
              if outcome.trained else f"{outcome.n_recorded} recorded ({outcome.n_new} new)")
    console.print(f"[{colour}]retrain: {outcome.result}[/{colour}] — {outcome.message}")
    console.print(f"  {counts}" + (f"; challenger v{outcome.challenger}, run {outcome.run_id}"
                                   if outcome.trained else ""))


@app.command()
def retrain(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option(help="Only trials recorded since (unix s / ISO).")] = None,
    min_new_trials: Annotated[int, typer.Option(min=1, help="Fewest new trials to train at all.")] = 20,
    every: Annotated[str | None, typer.Option(help="Run on a schedule (90s, 15m, 1h) until stopped.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Base data: a 2a folder, BIDS tree, gs:// or "
                                                            "moabb:NAME (with --subject).")] = None,
    train: Annotated[list[str] | None, typer.Option("--train", metavar="FILE",
                                                               help="Base data as files or globs (runs "
                                                                    "joined), or sessions (ses-T).")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject whose training data is base data.")] = None,
    allow_warnings: Annotated[bool, typer.Option("--allow-warnings", help="Read files their reader "
                                                                          "warns about.")] = False,
    store: Annotated[str | None, typer.Option(help="Store of recorded trials (default: settings).")] = None,
    holdout_fraction: Annotated[float, typer.Option(help="Most recent share of trials held out.")] = 0.3,
    name: Annotated[str | None, typer.Option("--name", help="Registered model name (default: settings).")
                    ] = None,
    profile: Annotated[str | None, typer.Option(help="Profile of the base data.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                   help="Pipeline parameter key=value.")] = None,
    margin: Annotated[float, typer.Option(min=0.0, help="Challenger must beat the champion by this.")] = 0.02,
    min_heldout: Annotated[int, typer.Option(min=1, help="Fewest held-out trials to judge on.")] = 20,
    metric: Annotated[str, typer.Option(help="accuracy or kappa.")] = "accuracy",
    notify: Annotated[str | None, typer.Option(help="Kafka bootstrap: announce promotions on the "
                                                    "model-updates topic ('' for none).")] = None,
    updates_topic: Annotated[str, typer.Option(help="Topic of promotion announcements.")] = "model-updates",
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics (--every).")] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the /metrics server.")] = "127.0.0.1",
    on: OnOption = "local",
    namespace: NamespaceOption = None,
    dry_run: DryRunOption = False,
    overlay: OverlayOption = "gke",
    image: ImageOption = None,
    logs: LogsOption = False,
) -> None:
    """Train a challenger on base data + recorded trials, judge it on the most recent ones, promote.

    Exits 0 with a message when there is nothing new or too little to train on. ``--on k8s`` runs
    it as a Job from the retrain CronJob's template.
    """
    if on == "k8s":
        raise typer.Exit(run_on_k8s("retrain", ctx=ctx))
    if on != "local":
        raise BcistreamError(f"--on: must be local or k8s, got '{on}'")
    if metrics_port is not None and port_in_use(metrics_host, metrics_port):
        raise BcistreamError(f"--metrics-port {metrics_port}: port in use on {metrics_host}; choose "
                             "another --metrics-port")
    from prometheus_client import CollectorRegistry, start_http_server

    from bcistream.cli.stream_cmds import _stop_on_signals
    from bcistream.training.params import parse_overrides
    from bcistream.training.promotion import PromotionPolicy
    from bcistream.training.recorded import parse_since
    from bcistream.training.retrain import RetrainConfig, RetrainMetrics, retrain_loop
    from bcistream.training.retrain import retrain as run_retrain

    if data is not None and subject is None and not train:
        raise BcistreamError("--data needs --subject (the subject's training data is base data) or --train")
    if subject is not None and data is None:
        raise BcistreamError("--subject needs --data (where the subject's recordings are)")
    if not 0.0 < holdout_fraction < 1.0:
        raise BcistreamError(f"--holdout-fraction: must be in (0, 1), got {holdout_fraction:g}")
    s = settings()
    config = RetrainConfig(
        tracking_uri=s.mlflow_uri, name=name or s.model_name, store_url=store or s.store_url,
        since=parse_since(since), min_new_trials=min_new_trials, holdout_fraction=holdout_fraction,
        policy=PromotionPolicy(margin=margin, min_trials=min_heldout, metric=metric),
        params=parse_overrides(set_) or None, cache_dir=s.home / "cache" / "gcs",
    )
    base = []
    if data is not None or train:
        from bcistream.cli.data_options import data_spec, load_selected
        from bcistream.training.datasets import data_profile

        spec = data_spec(data, train, None, subject or "all", allow_warnings)
        moabb = bool(data and data.startswith("moabb:"))
        prof = data_profile(spec, profile if (profile or moabb) else s.profile)
        base += [d.train for d in load_selected(spec, prof, s)]
    publisher = None
    if notify:
        from bcistream.streamer.model_updates import ModelUpdatePublisher

        publisher = ModelUpdatePublisher(notify, updates_topic)
    try:
        if every is None:
            outcome = run_retrain(config, base, on_promote=publisher)
            _print(outcome)
            return
        period = parse_every(every)
        registry = CollectorRegistry()
        metrics = RetrainMetrics(registry)
        server = start_http_server(metrics_port, addr=metrics_host, registry=registry)[0] if (
            metrics_port is not None) else None

        def on_outcome(outcome) -> None:
            metrics.observe(outcome)
            _print(outcome)

        stop = threading.Event()
        console.print(f"retraining every {period:g} s until stopped (Ctrl-C)")
        with _stop_on_signals(stop):
            retrain_loop(config, base, period, stop, on_outcome=on_outcome, on_promote=publisher)
        if server is not None:
            server.shutdown()
    finally:
        if publisher is not None:
            publisher.close()
