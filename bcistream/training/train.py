"""Train, evaluate, track and register: one model per subject, or one pooled over subjects.

For every model: fit on session T and score on session E (`evaluate_subject`), then log to MLflow
(parameters, metrics, data fingerprint, profile, confusion matrix and CSP scalp maps, the model),
register a new version with alias ``challenger``, and write a markdown report with the figures
into the run folder. One W&B run per call carries the same metrics.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bcistream.data.recording import Recording
from bcistream.pipeline import epochs_from_recording
from bcistream.training.datasets import SubjectData, concat_recordings, fingerprint, fingerprint_digest
from bcistream.training.evaluation import SubjectResult, evaluate_subject
from bcistream.training.params import decoder_params_tag
from bcistream.training.plots import confusion_png, topomap_png
from bcistream.training.registry import register_model, tracking
from bcistream.training.report import write_report
from bcistream.training.tracking import WandbRun, ensure_experiment

__all__ = ["TrainConfig", "TrainedModel", "TrainOutcome", "model_name_for", "train_models"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Where a training run is tracked and written.

    Attributes
    ----------
    tracking_uri : str
        MLflow tracking and registry URI.
    model_name : str
        Base of the registered names: every model is ``MODEL_NAME-LABEL`` (`model_name_for`).
    runs_dir : Path
        Parent of the run folders (reports, figures, W&B offline runs).
    experiment : str
        MLflow experiment.
    wandb_mode : str
        ``offline``, ``online`` or ``disabled`` (already resolved, see `tracking.wandb_mode`).
    wandb_project : str
    folds : int
        CV folds on session T.
    data_url : str
        Where the data came from (logged).
    artifacts : str or None
        Artifact root of a new experiment (folder or ``gs://``); default beside a sqlite registry.
    """

    tracking_uri: str
    model_name: str
    runs_dir: Path
    experiment: str = "bcistream"
    wandb_mode: str = "offline"
    wandb_project: str = "bcistream"
    folds: int = 5
    data_url: str = ""
    artifacts: str | None = None


@dataclass
class TrainedModel:
    """One fitted, evaluated and registered model."""

    label: str
    subjects: list[int]
    result: SubjectResult
    run_id: str
    name: str
    version: str
    folder: Path
    heldout: list[Recording]
    data_digest: str
    figures: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tracking_seconds: float = 0.0


@dataclass
class TrainOutcome:
    """Everything one training call produced."""

    models: list[TrainedModel]
    folder: Path
    report: Path
    wandb_dir: Path | None
    params: dict[str, Any]


def model_name_for(base: str, label: str, n_models: int | None = None) -> str:
    """The registered name: always ``base-LABEL`` (``bcistream-A01``, ``bcistream-sub-01``,
    ``bcistream-pooled``), whatever selected the data, so two subjects never share a champion.

    ``n_models`` is accepted for compatibility and ignored: the rule is the same for one model or many.
    """
    import re

    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "data"
    return f"{base}-{clean}"


def _run_folder(runs_dir: Path, label: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = runs_dir / f"{stamp}-{label}"
    k = 1
    while folder.exists():
        k += 1
        folder = runs_dir / f"{stamp}-{label}-{k}"
    folder.mkdir(parents=True)
    return folder


def _fit_one(label: str, parts: list[SubjectData], params: dict[str, Any], folds: int
             ) -> tuple[SubjectResult, float]:
    t0 = time.perf_counter()
    if len(parts) == 1:
        train, evaluation = parts[0].train, parts[0].evaluation
    else:
        train = concat_recordings([p.train for p in parts], source=f"pooled {label}")
        evals = [p.evaluation for p in parts if p.evaluation is not None]
        evaluation = concat_recordings(evals, source=f"pooled {label} E") if evals else None
    result = evaluate_subject(train, evaluation, params=dict(params), folds=folds, subject=label)
    return result, time.perf_counter() - t0


def _log_model_run(model: TrainedModel, parts: list[SubjectData], params: dict[str, Any],
                   config: TrainConfig, prints: list[dict[str, object]], nested: bool) -> None:
    import mlflow

    res = model.result
    metrics = {**res.metrics(), "fit_seconds": model.seconds}
    with mlflow.start_run(run_name=model.label, nested=nested) as run:
        model.run_id = run.info.run_id
        mlflow.log_params({**{k: str(v) for k, v in params.items()},
                           "subjects": ",".join(str(s) for s in model.subjects),
                           "folds": config.folds, "profile": parts[0].train.profile.name,
                           "data_url": config.data_url})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"bcistream.label": model.label, "data.sha256": model.data_digest,
                         "data.files": ",".join(str(p["file"]) for p in prints)})
        mlflow.log_dict({"files": prints, "sha256": model.data_digest}, "data_fingerprint.json")
        mlflow.log_dict(parts[0].train.profile.to_dict(), "profile.json")
        mlflow.log_dict({k: {str(i): r for i, r in v.items()} for k, v in res.excluded.items()},
                        "excluded_trials.json")
        for path in model.figures.values():
            mlflow.log_artifact(str(path), "figures")
        if model.notes:
            mlflow.set_tag("notes", " | ".join(model.notes))
        tags = {"subjects": ",".join(str(s) for s in model.subjects), "data.sha256": model.data_digest,
                "decoder.params": decoder_params_tag(params),
                **{f"metric.{k}": f"{v:.4f}" for k, v in metrics.items()}}
        model.version = register_model(
            res.pipeline, tracking_uri=config.tracking_uri, name=model.name, run_id=run.info.run_id,
            alias="challenger", tags=tags, metadata={"metrics": metrics, "label": model.label},
        )


def train_models(
    data: list[SubjectData],
    params: dict[str, Any],
    config: TrainConfig,
    *,
    pooled: bool = False,
    progress: Callable[[str], None] | None = None,
    n_jobs: int = 1,
) -> TrainOutcome:
    """Fit, evaluate, log and register one model per subject (or one pooled model).

    Parameters
    ----------
    data : list of SubjectData
        Loaded subjects (all with the same profile).
    params : dict
        Full keyword set of `make_pipeline` (see `params.pipeline_params`).
    config : TrainConfig
    pooled : bool
        One model fitted on the T sessions of all subjects, scored on all E sessions.
    progress : callable, optional
        Called with a short label after each model.
    n_jobs : int
        Processes fitting and evaluating models in parallel (tracking stays in this process).

    Returns
    -------
    TrainOutcome
    """
    import mlflow

    if not data:
        raise ValueError("no subjects to train on")
    groups = ([("pooled", data)] if pooled and len(data) > 1
              else [(d.label, [d]) for d in data])
    label = groups[0][0] if len(groups) == 1 else f"{len(groups)}-subjects"
    folder = _run_folder(config.runs_dir, label)
    exp_id = ensure_experiment(config.tracking_uri, config.experiment, config.artifacts)
    wb = WandbRun(config.wandb_mode, folder, name=folder.name, project=config.wandb_project,
                  config={**params, "subjects": [str(d.subject) for d in data], "pooled": pooled,
                          "data_url": config.data_url})
    models: list[TrainedModel] = []
    try:
        with tracking(config.tracking_uri):
            mlflow.set_experiment(experiment_id=exp_id)
            parent = (mlflow.start_run(experiment_id=exp_id, run_name=folder.name)
                      if len(groups) > 1 else None)
            try:
                for (glabel, parts), fitted in zip(groups, _fits(groups, params, config.folds, n_jobs),
                                                   strict=True):
                    models.append(_train_group(glabel, parts, fitted, params, config, folder,
                                               len(groups), parent is not None, wb))
                    if progress is not None:
                        progress(f"trained {glabel}")
            finally:
                if parent is not None:
                    mlflow.end_run()
    finally:
        wb.finish()
    report = write_report(folder, models, params, config.data_url)
    return TrainOutcome(models=models, folder=folder, report=report, wandb_dir=wb.dir, params=params)


def _fits(groups, params: dict[str, Any], folds: int, n_jobs: int):
    """Fit + evaluate every group, lazily in order; in worker processes when ``n_jobs > 1``."""
    if n_jobs <= 1 or len(groups) == 1:
        return (_fit_one(label, parts, params, folds) for label, parts in groups)
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fit_one)(label, parts, params, folds) for label, parts in groups)


def _train_group(label: str, parts: list[SubjectData], fitted: tuple[SubjectResult, float],
                 params: dict[str, Any], config: TrainConfig, folder: Path, n_models: int, nested: bool,
                 wb: WandbRun) -> TrainedModel:
    result, seconds = fitted
    t0 = time.perf_counter()
    sub = folder / label if n_models > 1 else folder
    prints = [e for p in parts for e in p.prints] or fingerprint([f for p in parts for f in p.files])
    model = TrainedModel(
        label=label, subjects=[p.subject for p in parts], result=result, run_id="",
        name=model_name_for(config.model_name, label), version="", folder=sub,
        heldout=[p.evaluation for p in parts if p.evaluation is not None],
        data_digest=fingerprint_digest(prints), seconds=seconds,
    )
    if result.confusion is not None:
        model.figures["confusion"] = confusion_png(result.confusion, result.classes,
                                                   sub / "confusion.png", f"{label}: T→E confusion")
    else:
        model.notes.append("no labelled evaluation session: no T→E score, no confusion matrix")
    try:  # the training windows name the class each CSP component separates
        ep = epochs_from_recording(result.pipeline, parts[0].train)
        X, y = ep.X, ep.y
    except Exception:  # noqa: BLE001  (a figure detail must not fail training)
        X = y = None
    topo, note = topomap_png(result.pipeline, sub / "csp_patterns.png", X, y)
    if topo is not None:
        model.figures["csp_patterns"] = topo
    else:
        model.notes.append(note)
    (sub / "metrics.json").write_text(json.dumps({**result.metrics(), "fit_seconds": seconds}, indent=2))
    _log_model_run(model, parts, params, config, prints, nested)
    prefix = f"{label}/" if n_models > 1 else ""
    wb.log({prefix + k: v for k, v in {**result.metrics(), "fit_seconds": seconds}.items()},
           images={prefix + k: p for k, p in model.figures.items()})
    model.tracking_seconds = time.perf_counter() - t0
    return model
