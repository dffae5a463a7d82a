"""Training commands: ``train``, ``promote``, ``tune``, ``models``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, progress_bar, settings
from bcistream.cli.data_options import (
    AllowWarningsOpt,
    DataOpt,
    ProfileOpt,
    SubjectOpt,
    TestOpt,
    TrainOpt,
    data_spec,
    load_selected,
    option_args,
)
from bcistream.cli.k8s_cmds import (
    DryRunOption,
    ImageOption,
    LogsOption,
    NamespaceOption,
    OnOption,
    OverlayOption,
    run_on_k8s,
)
from bcistream.cli.tables import print_table
from bcistream.errors import BcistreamError


def _quiet_mlflow() -> None:
    # MLflow logs every registration at INFO through its own handler; the CLI prints its own summary.
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)

NameOpt = Annotated[str | None, typer.Option(
    "--name", help="Base of registered names: each model is NAME-LABEL, e.g. bcistream-A01.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                  help="Pipeline parameter key=value.")]
MarginOpt = Annotated[float, typer.Option(min=0.0, help="Challenger must beat the champion by this much.")]
MinTrialsOpt = Annotated[int, typer.Option(min=1, help="Fewest held-out trials to compare on.")]
MetricOpt = Annotated[str, typer.Option(help="accuracy or kappa.")]


def _optuna_storage(s, storage: str | None) -> str:
    if storage:
        return storage
    s.home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(s.home / 'optuna.db').resolve()}"


def _profile(spec, profile: str | None, s):
    from bcistream.training.datasets import data_profile

    moabb = bool(spec.data and str(spec.data).startswith("moabb:"))
    return data_profile(spec, profile if (profile or moabb) else s.profile)


def _promote(heldout, *, tracking_uri: str, name: str, margin: float, min_trials: int, metric: str,
             challenger: str | None = None):
    from bcistream.training.promotion import PromotionPolicy, promote

    return promote(heldout, tracking_uri=tracking_uri, name=name, challenger=challenger,
                   policy=PromotionPolicy(margin=margin, min_trials=min_trials, metric=metric))


def _promote_and_print(heldout, **kwargs):
    decision = _promote(heldout, **kwargs)
    colour = "green" if decision.promoted else "yellow"
    console.print(f"[{colour}]{decision.summary()}[/{colour}]")
    return decision


@app.command()
def train(
    ctx: typer.Context,
    data: DataOpt = None,
    train_files: TrainOpt = None,
    test_files: TestOpt = None,
    subject: SubjectOpt = "all",
    profile: ProfileOpt = None,
    set_: SetOpt = None,
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
    allow_warnings: AllowWarningsOpt = False,
    on: OnOption = "local",
    namespace: NamespaceOption = None,
    dry_run: DryRunOption = False,
    overlay: OverlayOption = "gke",
    image: ImageOption = None,
    logs: LogsOption = False,
) -> None:
    """Fit per subject (or pooled), evaluate train→test, log to MLflow/W&B, register a challenger, gate it.

    Every model is registered as NAME-LABEL: NAME-A01 (2a subject 1), NAME-sub-01 (BIDS),
    NAME-S001 (explicit files S001R*.edf), NAME-pooled (--pooled). ``--on k8s`` runs it as a Job
    from the train Job template.
    """
    if on == "k8s":
        raise typer.Exit(run_on_k8s("train", ctx=ctx))
    if on != "local":
        raise BcistreamError(f"--on: must be local or k8s, got '{on}'")
    from bcistream.training.params import parse_overrides, pipeline_params, resolve_params
    from bcistream.training.report import append_promotion
    from bcistream.training.tracking import wandb_mode
    from bcistream.training.train import TrainConfig, train_models
    from bcistream.training.tuning import best_params

    _quiet_mlflow()
    s = settings()
    spec = data_spec(data, train_files, test_files, subject, allow_warnings)
    overrides = parse_overrides(set_)
    prof = _profile(spec, profile, s)
    base = best_params(from_study, _optuna_storage(s, storage), profile=prof) if from_study else None
    params = resolve_params(pipeline_params(base, overrides), prof)
    config = TrainConfig(tracking_uri=s.mlflow_uri, model_name=name or s.model_name, runs_dir=s.runs_dir,
                         wandb_mode=wandb_mode(s.wandb_mode), folds=folds, data_url=spec.describe(),
                         artifacts=s.mlflow_artifacts)
    loaded = load_selected(spec, prof, s, jobs)
    n_models = 1 if pooled else len(loaded)
    with progress_bar("training", total=n_models) as advance:
        outcome = train_models(loaded, params, config, pooled=pooled, progress=advance, n_jobs=jobs)
    # Judge first, print after: the table then says what each version IS (champion or challenger).
    # Keyed by (name, version): every subject's model has its own version 1.
    decisions: dict[tuple[str, str], Any] = {}
    status: dict[tuple[str, str], str] = {}
    for m in outcome.models:
        key = (m.name, m.version)
        if no_promote:
            status[key] = "challenger (--no-promote)"
        elif not m.heldout:
            status[key] = "challenger — no labelled test session (--test), not promoted"
        else:
            decisions[key] = decision = _promote(
                m.heldout, tracking_uri=config.tracking_uri, name=m.name, margin=margin,
                min_trials=min_trials, metric=metric, challenger=m.version)
            status[key] = "champion (promoted)" if decision.promoted else "challenger (not promoted)"
    print_table(console, training_table(outcome, status))
    for m in outcome.models:
        console.print(f"registered {m.name} v{m.version}: {status[(m.name, m.version)]}", soft_wrap=True)
        decision = decisions.get((m.name, m.version))
        if decision is not None:
            colour = "green" if decision.promoted else "yellow"
            console.print(f"[{colour}]{decision.summary()}[/{colour}]", soft_wrap=True)
            append_promotion(outcome.report, m.label, decision.summary())
    console.print(f"report: {outcome.report}")
    if outcome.wandb_dir is not None:
        console.print(f"W&B run: {outcome.wandb_dir}")


def training_table(outcome: Any, status: dict[tuple[str, str], str]) -> Table:
    """One row per trained model: what it was registered as (with the gate's outcome) and its scores.

    Parameters
    ----------
    outcome : TrainingOutcome
        What `train` did (its ``models`` and ``folder``).
    status : dict
        ``(name, version)`` → what the version is after the gate, e.g. ``champion (promoted)``.
    """
    table = Table("model", "registered as", "T→E acc", "kappa", "CV on T", "trials T/E", "fit s",
                  title=f"Training run {outcome.folder.name}")
    for m in outcome.models:
        r = m.result
        table.add_row(m.label, f"{m.name} v{m.version} {status[(m.name, m.version)]}",
                      "—" if r.accuracy is None else f"{r.accuracy:.3f}",
                      "—" if r.kappa is None else f"{r.kappa:.3f}",
                      f"{r.cv_mean:.3f} ± {r.cv_std:.3f}", f"{r.n_train}/{r.n_test}", f"{m.seconds:.1f}")
    return table


@app.command()
def promote(
    data: DataOpt = None,
    train_files: TrainOpt = None,
    test_files: TestOpt = None,
    subject: SubjectOpt = "all",
    profile: ProfileOpt = None,
    name: NameOpt = None,
    challenger: Annotated[str | None, typer.Option(help="Version to judge (default: challenger).")] = None,
    margin: MarginOpt = 0.02,
    min_trials: MinTrialsOpt = 20,
    metric: MetricOpt = "accuracy",
    allow_warnings: AllowWarningsOpt = False,
) -> None:
    """Re-score champion and challenger of each selected subject on its test data; move 'champion'
    if the challenger wins. Judges NAME-LABEL, the model `train` registered for that data."""
    from bcistream.training.train import model_name_for

    _quiet_mlflow()
    s = settings()
    spec = data_spec(data, train_files, test_files, subject, allow_warnings)
    loaded = load_selected(spec, _profile(spec, profile, s), s)
    judged = [d for d in loaded if d.evaluation is not None]
    if not judged:
        raise BcistreamError(f"{spec.describe()}: no labelled test data (A0xE + A0xE.mat, --test, "
                             "a test session) to judge on")
    if challenger is not None and len(judged) > 1:
        raise BcistreamError("--challenger names one version: select one subject with --subject")
    promoted = True
    for d in judged:
        decision = _promote_and_print([d.evaluation], tracking_uri=s.mlflow_uri,
                                      name=model_name_for(name or s.model_name, d.label), margin=margin,
                                      min_trials=min_trials, metric=metric, challenger=challenger)
        promoted = promoted and decision.promoted
    if not promoted:
        raise typer.Exit(1)


@app.command()
def tune(
    ctx: typer.Context,
    data: DataOpt = None,
    train_files: TrainOpt = None,
    test_files: Annotated[list[str] | None, typer.Option(
        "--test", metavar="FILE", help="Test recordings of the later train (never searched on; repeated "
                                       "in the printed next: command).")] = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials to add to the study.")] = 20,
    subject: Annotated[str, typer.Option(help="The one subject whose training data is searched.")] = "1",
    engine: Annotated[str, typer.Option(help="optuna (default) or wandb (sweeps; online only).")] = "optuna",
    storage: Annotated[str | None, typer.Option(help="Optuna RDB URL (default sqlite in home).")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (default tune-LABEL-PROFILE-DATA, keyed "
                                                    "by profile and data fingerprint).")] = None,
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    folds: Annotated[int, typer.Option(min=2, help="CV folds on the training data.")] = 5,
    seed: Annotated[int | None, typer.Option(help="Sampler seed.")] = None,
    track: Annotated[bool, typer.Option(help="Log each trial as a nested MLflow run.")] = True,
    allow_warnings: AllowWarningsOpt = False,
    decoders: Annotated[str, typer.Option(help="Comma list of decoders searched, or 'all'.")] = "all",
    nested: Annotated[int, typer.Option(
        min=0, help="Also estimate the tuned accuracy by nested CV with this many outer folds.")] = 0,
    on: OnOption = "local",
    namespace: NamespaceOption = None,
    dry_run: DryRunOption = False,
    overlay: OverlayOption = "gke",
    image: ImageOption = None,
    logs: LogsOption = False,
    parallelism: Annotated[int | None, typer.Option(min=1, help="With --on k8s: parallel workers "
                                                               "sharing the study.")] = None,
) -> None:
    """Search decoders and their parameters by CV on the training data only; resumable; best -> train
    --from-study.

    ``--set`` fixes parameters (they are not searched; ``--set decoder=NAME`` searches one decoder).
    A study belongs to one profile and one data fingerprint: adding trials from other data or
    another profile is refused. The best CV of a search is optimistic (the best of many noisy
    estimates); ``--nested K`` also reports the honest nested-CV estimate (the search rerun inside
    each of K outer folds of the training data). ``--on k8s`` runs it as an Indexed Job whose
    workers share one study.
    """
    if on == "k8s":
        raise typer.Exit(run_on_k8s("tune", ctx=ctx))
    if on != "local":
        raise BcistreamError(f"--on: must be local or k8s, got '{on}'")
    import optuna

    from bcistream.decoders import DECODERS
    from bcistream.training.datasets import fingerprint_digest
    from bcistream.training.params import parse_overrides, pipeline_params, resolve_params
    from bcistream.training.tracking import wandb_mode
    from bcistream.training.tuning import default_study_name, nested_cv, tune_optuna, tune_wandb

    if engine not in ("optuna", "wandb"):
        raise BcistreamError(f"--engine: must be 'optuna' or 'wandb', got '{engine}'")
    if "," in subject or subject == "all":
        raise BcistreamError(f"--subject: tune searches one subject's data, got '{subject}'")
    _quiet_mlflow()
    s = settings()
    spec = data_spec(data, train_files, None, subject, allow_warnings)
    fixed = parse_overrides(set_)
    prof = _profile(spec, profile, s)
    names = list(DECODERS) if decoders == "all" else [d.strip() for d in decoders.split(",") if d.strip()]
    unknown = [d for d in names if d not in DECODERS]
    if unknown or not names:
        raise BcistreamError(f"--decoders: unknown decoder {', '.join(unknown) or '(none)'} "
                             f"(known: {', '.join(DECODERS)})")
    if "decoder" in fixed:
        names = [fixed["decoder"]]
    # Only decoders that take every fixed parameter are searched.
    names = [d for d in names if set(fixed) - {"decoder"} <= set(DECODERS[d].defaults)]
    if not names:
        raise BcistreamError(f"--set {', '.join(sorted(fixed))}: no searched decoder takes all of them")
    for d in names:
        resolve_params(pipeline_params(None, {**fixed, "decoder": d}), prof)
    loaded = load_selected(spec, prof, s)[0]
    digest = fingerprint_digest(list(loaded.prints))
    name = study or default_study_name(loaded.label, prof, digest)
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
                          artifacts=s.mlflow_artifacts, fixed=fixed, data_digest=digest, decoders=names)
    console.print(f"study '{res.study}' ({res.storage}): {res.n_trials_total} trials "
                  f"({res.n_trials_run} new); best CV {res.best_value:.3f} (optimistic: the best of "
                  f"{res.n_trials_total} CV estimates on the training data)")
    console.print("best: " + ", ".join(f"{k}={v}" for k, v in res.best_params.items()))
    if nested:
        import numpy as np

        with progress_bar("nested CV", total=nested) as advance:
            est = nested_cv(loaded.train, n_trials=trials, decoders=names, folds=folds, outer=nested,
                            seed=seed or 0, fixed=fixed)
            advance(f"{nested} outer folds")
        picks = ", ".join(p["decoder"] for p in est.chosen)
        console.print(f"nested CV on the training data ({nested} outer folds, {trials} trials each): "
                      f"{est.mean:.3f} ± {np.std(est.scores):.3f} — the honest estimate of this "
                      f"tuning procedure (outer folds chose: {picks})")
    # The next command repeats every data/profile option the user gave (the test data too: the
    # search never saw it, `train` evaluates on it).
    nxt = ["bcistream", "train", *data_spec(data, train_files, test_files, subject, allow_warnings).argv()]
    if subject != "all" and "--subject" not in nxt:
        nxt += ["--subject", subject]
    nxt += option_args(profile=profile, set=set_, from_study=res.study, storage=storage,
                       folds=folds if folds != 5 else None)
    import shlex

    console.print("next: " + shlex.join(nxt), soft_wrap=True)


@app.command()
def models(
    name: Annotated[str | None, typer.Option("--name", help="A registered name (bcistream-A01), or a base: "
                                                            "every NAME-LABEL model (default: settings).")
                    ] = None,
) -> None:
    """Registered versions with aliases, metrics and promotion decisions (who is champion and why)."""
    from bcistream.training.registry import client, model_versions, registered_names

    s = settings()
    base = name or s.model_name
    rows = model_versions(s.mlflow_uri, base)
    names = [base] if rows else sorted(
        m.name for m in client(s.mlflow_uri).search_registered_models(f"name LIKE '{base}-%'"))
    if not names:
        known = registered_names(s.mlflow_uri)
        hint = f"registered models: {'; '.join(known)}" if known else "the registry is empty"
        raise BcistreamError(f"no registered model named '{base}' or '{base}-LABEL' in {s.mlflow_uri} "
                             f"({hint})")
    for model in names:
        _show_model(model, rows if model == base else model_versions(s.mlflow_uri, model), s.mlflow_uri)


def _show_model(model: str, rows: list, uri: str) -> None:
    table = Table("version", "aliases", "created", "acc", "kappa", "CV", "decision",
                  title=f"Model '{model}' ({uri})")
    champion = None
    for row in rows:
        tags = row["tags"]
        if "champion" in row["aliases"]:
            champion = row
        table.add_row(row["version"], ", ".join(row["aliases"]), row["created"],
                      tags.get("metric.accuracy", "—"), tags.get("metric.kappa", "—"),
                      tags.get("metric.cv_mean", "—"), tags.get("promotion.decision", "—"))
    print_table(console, table)
    for row in rows:
        _show_notes(row)
    if champion is None:
        console.print("no champion yet")
    else:
        console.print(f"champion: v{champion['version']} — "
                      f"{champion['tags'].get('promotion.reasons', 'set by hand (no promotion tags)')}")


def _show_notes(row: dict) -> None:
    """A version's gate verdict and decoder, below the table: prose, too long for a column at 80
    columns, where it squeezed the identifiers beside it until they broke mid-word."""
    tags = row["tags"]
    if tags.get("promotion.verdict"):
        console.print(f"v{row['version']} {tags.get('promotion.decision', 'decision')}: "
                      f"{tags['promotion.verdict']}")
    if "decoder" in tags or "decoder.params" in tags:
        console.print(f"v{row['version']} decoder {tags.get('decoder', 'csp-svm')}: "
                      f"{tags.get('decoder.params', '')}")
