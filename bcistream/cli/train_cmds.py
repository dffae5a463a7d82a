"""Training commands: ``train``, ``promote``, ``tune``, ``models``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, parse_subjects, progress_bar, settings
from bcistream.errors import BcistreamError


def _quiet_mlflow() -> None:
    # MLflow logs every registration at INFO through its own handler; the CLI prints its own summary.
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)

DataOpt = Annotated[str, typer.Option("--data", envvar="BCISTREAM_DATA_URL",
                                      help="Dataset folder or gs://bucket/prefix (A0xT/A0xE files).")]
ProfileOpt = Annotated[str | None, typer.Option(help="Profile name or TOML file.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Registered model name (default: settings).")]
MarginOpt = Annotated[float, typer.Option(min=0.0, help="Challenger must beat the champion by this much.")]
MinTrialsOpt = Annotated[int, typer.Option(min=1, help="Fewest held-out trials to compare on.")]
MetricOpt = Annotated[str, typer.Option(help="accuracy or kappa.")]


def _optuna_storage(s, storage: str | None) -> str:
    if storage:
        return storage
    s.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(s.home / 'optuna.db').resolve()}"


def _load(data: str, subject: str, profile: str | None, s, jobs: int = 1):
    from bcistream.training.datasets import load_subjects, resolve_data

    folder = resolve_data(data, cache_dir=s.home / "cache" / "gcs")
    subjects = parse_subjects(subject, folder)
    with progress_bar("loading", total=len(subjects)) as advance:
        return load_subjects(folder, subjects, profile, n_jobs=jobs, progress=advance)


def _promote_and_print(heldout, *, tracking_uri: str, name: str, margin: float, min_trials: int,
                       metric: str, challenger: str | None = None):
    from bcistream.training.promotion import PromotionPolicy, promote

    decision = promote(heldout, tracking_uri=tracking_uri, name=name, challenger=challenger,
                       policy=PromotionPolicy(margin=margin, min_trials=min_trials, metric=metric))
    colour = "green" if decision.promoted else "yellow"
    console.print(f"[{colour}]{decision.summary()}[/{colour}]")
    return decision


@app.command()
def train(
    data: DataOpt,
    subject: Annotated[str, typer.Option(help="Subject number, comma list, or 'all'.")] = "all",
    profile: ProfileOpt = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Pipeline parameter key=value.")] = None,
    pooled: Annotated[bool, typer.Option(help="One model over all subjects' T sessions.")] = False,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="Register only; skip the gate.")] = False,
    from_study: Annotated[str | None, typer.Option(help="Start from a study's best parameters.")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL of --from-study.")] = None,
    name: NameOpt = None,
    folds: Annotated[int, typer.Option(min=2, help="CV folds on session T.")] = 5,
    margin: MarginOpt = 0.02,
    min_trials: MinTrialsOpt = 20,
    metric: MetricOpt = "accuracy",
    jobs: Annotated[int, typer.Option(min=1, help="Processes loading and fitting subjects in parallel.")] = 1,
) -> None:
    """Fit per subject (or pooled), evaluate T->E, log to MLflow/W&B, register a challenger, then gate it.

    A single model is registered as NAME; several per-subject models as NAME-A01, NAME-A02, ...
    """
    from bcistream.training.params import parse_overrides, pipeline_params
    from bcistream.training.report import append_promotion
    from bcistream.training.tracking import wandb_mode
    from bcistream.training.train import TrainConfig, train_models
    from bcistream.training.tuning import best_params

    _quiet_mlflow()
    s = settings()
    overrides = parse_overrides(set_)
    base = best_params(from_study, _optuna_storage(s, storage)) if from_study else None
    params = pipeline_params(base, overrides)
    config = TrainConfig(tracking_uri=s.mlflow_uri, model_name=name or s.model_name, runs_dir=s.runs_dir,
                         wandb_mode=wandb_mode(s.wandb_mode), folds=folds, data_url=str(data),
                         artifacts=s.mlflow_artifacts)
    loaded = _load(data, subject, profile, s, jobs)
    n_models = 1 if pooled else len(loaded)
    with progress_bar("training", total=n_models) as advance:
        outcome = train_models(loaded, params, config, pooled=pooled, progress=advance, n_jobs=jobs)
    table = Table("model", "registered", "T→E acc", "kappa", "CV on T", "trials T/E", "fit s",
                  title=f"Training run {outcome.folder.name}")
    for m in outcome.models:
        r = m.result
        table.add_row(m.label, f"{m.name} v{m.version} (challenger)",
                      "—" if r.accuracy is None else f"{r.accuracy:.3f}",
                      "—" if r.kappa is None else f"{r.kappa:.3f}",
                      f"{r.cv_mean:.3f} ± {r.cv_std:.3f}", f"{r.n_train}/{r.n_test}", f"{m.seconds:.1f}")
    console.print(table)
    console.print(f"report: {outcome.report}")
    if outcome.wandb_dir is not None:
        console.print(f"W&B run: {outcome.wandb_dir}")
    if no_promote:
        return
    for m in outcome.models:
        if not m.heldout:
            console.print(f"[yellow]{m.name} v{m.version}: no labelled E session, not promoted[/yellow]")
            continue
        decision = _promote_and_print(m.heldout, tracking_uri=config.tracking_uri, name=m.name,
                                      margin=margin, min_trials=min_trials, metric=metric,
                                      challenger=m.version)
        append_promotion(outcome.report, m.label, decision.summary())


@app.command()
def promote(
    data: DataOpt,
    subject: Annotated[str, typer.Option(help="Subjects whose E sessions are the held-out data.")] = "all",
    profile: ProfileOpt = None,
    name: NameOpt = None,
    challenger: Annotated[str | None, typer.Option(help="Version to judge (default: challenger).")] = None,
    margin: MarginOpt = 0.02,
    min_trials: MinTrialsOpt = 20,
    metric: MetricOpt = "accuracy",
) -> None:
    """Re-score champion and challenger on the same held-out E sessions; move 'champion' if it wins."""
    _quiet_mlflow()
    s = settings()
    loaded = _load(data, subject, profile, s)
    heldout = [d.evaluation for d in loaded if d.evaluation is not None]
    if not heldout:
        raise BcistreamError(f"{data}: no labelled evaluation session (A0xE + A0xE.mat) to judge on")
    decision = _promote_and_print(heldout, tracking_uri=s.mlflow_uri, name=name or s.model_name,
                                  margin=margin, min_trials=min_trials, metric=metric, challenger=challenger)
    if not decision.promoted:
        raise typer.Exit(1)


@app.command()
def tune(
    data: DataOpt,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to add to the study.")] = 20,
    subject: Annotated[int, typer.Option(min=1, max=99, help="Subject whose T session is searched.")] = 1,
    engine: Annotated[str, typer.Option(help="optuna (default) or wandb (sweeps; online only).")] = "optuna",
    storage: Annotated[str | None, typer.Option(help="Optuna RDB URL (default sqlite in home).")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default NAME-A0x).")] = None,
    profile: ProfileOpt = None,
    folds: Annotated[int, typer.Option(min=2, help="CV folds on session T.")] = 5,
    seed: Annotated[int | None, typer.Option(help="Sampler seed.")] = None,
    track: Annotated[bool, typer.Option(help="Log each trial as a nested MLflow run.")] = True,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="decoder=NAME: search only that decoder's parameters.")] = None,
    decoders: Annotated[str, typer.Option(help="Comma list of decoders searched, or 'all'.")] = "all",
    nested: Annotated[int, typer.Option(
        min=0, help="Also estimate the tuned accuracy by nested CV with this many outer folds.")] = 0,
) -> None:
    """Search decoders and their parameters by CV on session T only; resumable; best -> train --from-study.

    The best CV of a search is optimistic (the best of many noisy estimates); ``--nested K`` also
    reports the honest nested-CV estimate (the search rerun inside each of K outer folds of T).
    """
    import optuna

    from bcistream.decoders import DECODERS
    from bcistream.training.params import parse_overrides
    from bcistream.training.tracking import wandb_mode
    from bcistream.training.tuning import nested_cv, tune_optuna, tune_wandb

    if engine not in ("optuna", "wandb"):
        raise BcistreamError(f"--engine must be 'optuna' or 'wandb', got '{engine}'")
    overrides = parse_overrides(set_)
    if set(overrides) - {"decoder"}:
        raise BcistreamError("tune searches the parameters: --set takes only decoder=NAME here")
    names = list(DECODERS) if decoders == "all" else [d.strip() for d in decoders.split(",") if d.strip()]
    if "decoder" in overrides:
        names = [overrides["decoder"]]
    unknown = [d for d in names if d not in DECODERS]
    if unknown or not names:
        raise BcistreamError(f"--decoders: unknown decoder {', '.join(unknown) or '(none)'} "
                             f"(known: {', '.join(DECODERS)})")
    _quiet_mlflow()
    s = settings()
    loaded = _load(data, str(subject), profile, s)[0]
    name = study or f"{s.model_name}-A{subject:02d}"
    if engine == "wandb":
        sid = tune_wandb(loaded.train, n_trials=trials, project="bcistream", mode=wandb_mode(s.wandb_mode),
                         folds=folds, decoder=names[0])
        console.print(f"W&B sweep {sid}: {trials} runs done")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = _optuna_storage(s, storage)
    with progress_bar("tuning", total=trials) as advance:
        res = tune_optuna(loaded.train, n_trials=trials, study=name, storage=url, folds=folds,
                          tracking_uri=s.mlflow_uri if track else None, seed=seed, progress=advance,
                          artifacts=s.mlflow_artifacts, decoders=names)
    console.print(f"study '{res.study}' ({res.storage}): {res.n_trials_total} trials "
                  f"({res.n_trials_run} new); best CV {res.best_value:.3f} (optimistic: the best of "
                  f"{res.n_trials_total} CV estimates on T)")
    console.print("best: " + ", ".join(f"{k}={v}" for k, v in res.best_params.items()))
    if nested:
        import numpy as np

        with progress_bar("nested CV", total=nested) as advance:
            est = nested_cv(loaded.train, n_trials=trials, decoders=names, folds=folds, outer=nested,
                            seed=seed or 0)
            advance(f"{nested} outer folds")
        picks = ", ".join(p["decoder"] for p in est.chosen)
        console.print(f"nested CV on T ({nested} outer folds, {trials} trials each): "
                      f"{est.mean:.3f} ± {np.std(est.scores):.3f} — the honest estimate of this "
                      f"tuning procedure (outer folds chose: {picks})")
    console.print(f"next: bcistream train --data {data} --subject {subject} --from-study {res.study}"
                  + (f" --storage {storage}" if storage else ""))


@app.command()
def models(
    name: NameOpt = None,
) -> None:
    """Registered versions with aliases, metrics and promotion decisions (who is champion and why)."""
    from bcistream.training.registry import model_versions

    s = settings()
    model = name or s.model_name
    rows = model_versions(s.mlflow_uri, model)
    if not rows:
        raise BcistreamError(f"no registered model '{model}' in {s.mlflow_uri}")
    table = Table("version", "aliases", "created", "decoder", "acc", "kappa", "CV", "decision",
                  "why", title=f"Model '{model}' ({s.mlflow_uri})")
    champion = None
    for row in rows:
        tags = row["tags"]
        if "champion" in row["aliases"]:
            champion = row
        table.add_row(row["version"], ",".join(row["aliases"]), row["created"],
                      # Versions registered before decoders were pluggable are all csp-svm.
                      tags.get("decoder", "csp-svm"),
                      tags.get("metric.accuracy", "—"), tags.get("metric.kappa", "—"),
                      tags.get("metric.cv_mean", "—"), tags.get("promotion.decision", "—"),
                      tags.get("promotion.verdict", ""))
    console.print(table)
    for row in rows:  # parameters below the table: too long for a column
        tags = row["tags"]
        if "decoder.params" in tags:
            console.print(f"v{row['version']} {tags.get('decoder', 'csp-svm')}: {tags['decoder.params']}",
                          soft_wrap=True)
    if champion is None:
        console.print("no champion yet")
    else:
        console.print(f"champion: v{champion['version']} — "
                      f"{champion['tags'].get('promotion.reasons', 'set by hand (no promotion tags)')}")
