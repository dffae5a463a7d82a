"""Hyper-parameter search on the training session only (CV on T; session E is never looked at).

The default engine is Optuna with an RDB storage (sqlite by default): a study is resumable, and
several processes (e.g. the pods of an Indexed Job) can share one database URL. Each trial is
logged as a nested MLflow run. W&B sweeps run the same objective when W&B is online.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcistream.data.profiles import Profile
from bcistream.data.recording import Recording
from bcistream.errors import BcistreamError
from bcistream.pipeline import epochs_from_recording, make_pipeline
from bcistream.training.evaluation import cross_validate
from bcistream.training.params import pipeline_params

__all__ = ["SEARCH_SPACE", "TuneResult", "best_params", "cv_objective", "default_study_name", "profile_key",
           "suggest_params", "tune_optuna", "tune_wandb", "wandb_sweep_config"]

log = logging.getLogger(__name__)

#: The search space (bounds of the band edges follow the issue; CSP components are capped by channels).
SEARCH_SPACE: dict[str, Any] = {
    "n_components": (2, 22),
    "log": (True, False),
    "reg": ("none", "ledoit_wolf", "oas"),
    "C": (1e-3, 1e2),
    "kernel": ("linear", "rbf"),
    "gamma": (1e-4, 1e1),
    "l_freq": (4.0, 14.0),
    "h_freq": (24.0, 40.0),
}


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a tuning call."""

    study: str
    storage: str
    n_trials_total: int
    n_trials_run: int
    best_value: float
    best_params: dict[str, Any]


def _to_pipeline(raw: dict[str, Any], n_channels: int) -> dict[str, Any]:
    """Sampled values -> keyword arguments of `make_pipeline` (full set, defaults filled in)."""
    reg = raw.get("reg", "none")
    params = {
        "n_components": min(int(raw["n_components"]), n_channels),
        "log": bool(raw["log"]),
        "reg": None if reg in (None, "none") else reg,
        "C": float(raw["C"]),
        "kernel": str(raw["kernel"]),
        "gamma": float(raw["gamma"]) if raw.get("kernel") == "rbf" and "gamma" in raw else "scale",
        "l_freq": float(raw["l_freq"]),
        "h_freq": float(raw["h_freq"]),
    }
    return pipeline_params(params)


def suggest_params(trial, n_channels: int, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample pipeline parameters from an Optuna trial (``fixed`` ones are set, not searched)."""
    s = SEARCH_SPACE
    high = min(s["n_components"][1], n_channels)
    raw: dict[str, Any] = {
        "n_components": trial.suggest_int("n_components", min(s["n_components"][0], high), high),
        "log": trial.suggest_categorical("log", list(s["log"])),
        "reg": trial.suggest_categorical("reg", list(s["reg"])),
        "C": trial.suggest_float("C", *s["C"], log=True),
        "kernel": trial.suggest_categorical("kernel", list(s["kernel"])),
        "l_freq": trial.suggest_float("l_freq", *s["l_freq"]),
        "h_freq": trial.suggest_float("h_freq", *s["h_freq"]),
    }
    if raw["kernel"] == "rbf":
        raw["gamma"] = trial.suggest_float("gamma", *s["gamma"], log=True)
    params = _to_pipeline(raw, n_channels)
    params.update(fixed or {})
    return params


def cv_objective(train: Recording, params: dict[str, Any], folds: int = 5) -> tuple[float, float]:
    """Mean and std of the CV accuracy on session T for ``params`` (the tuning objective)."""
    pipe = make_pipeline(train.profile, **params)
    epochs = epochs_from_recording(pipe, train)
    if len(epochs.y) < 2 * folds:
        raise BcistreamError(f"{train.source}: {len(epochs.y)} usable trials, too few for {folds}-fold CV")
    scores = cross_validate(pipe, epochs, folds=folds)
    return float(np.mean(scores)), float(np.std(scores))


#: Study attributes that key a study to one profile and one data fingerprint.
PROFILE_ATTR, DATA_ATTR = "bcistream.profile", "bcistream.data_sha256"


def profile_key(profile: Profile) -> str:
    """A short digest of everything a profile decides (channels, rate, band, window, classes …)."""
    text = json.dumps(profile.to_dict(), sort_keys=True)
    return f"{profile.name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def default_study_name(label: str, profile: Profile, data_digest: str) -> str:
    """``tune-LABEL-PROFILE-DATA8``: another profile or other data makes another study."""
    return f"tune-{label}-{profile.name}-{data_digest[:8]}"


def _check_key(st, study: str, profile: Profile | None, data_digest: str | None) -> None:
    attrs = st.user_attrs
    if profile is not None and attrs.get(PROFILE_ATTR) not in (None, profile_key(profile)):
        raise BcistreamError(
            f"study '{study}' belongs to profile {attrs[PROFILE_ATTR].split(':')[0]!r} "
            f"({attrs[PROFILE_ATTR]}), not {profile_key(profile)}; use another --study")
    if data_digest is not None and attrs.get(DATA_ATTR) not in (None, data_digest):
        raise BcistreamError(
            f"study '{study}' was tuned on other data (sha256 {attrs[DATA_ATTR][:12]}…, this data "
            f"{data_digest[:12]}…); its trials are not comparable: use another --study")


def best_params(study: str, storage: str, profile: Profile | None = None) -> dict[str, Any]:
    """The pipeline parameters of a study's best trial (for ``train --from-study``).

    With ``profile``, a study of another profile is refused (its parameters may not fit).
    """
    import optuna

    try:
        st = optuna.load_study(study_name=study, storage=storage)
        _check_key(st, study, profile, None)
        best = st.best_trial
    except KeyError:
        raise BcistreamError(f"no study '{study}' in {storage}") from None
    except ValueError:
        raise BcistreamError(f"study '{study}' in {storage} has no completed trial") from None
    stored = best.user_attrs.get("pipeline_params")
    if stored is None:
        raise BcistreamError(f"study '{study}': best trial #{best.number} has no pipeline_params attribute")
    return pipeline_params(json.loads(stored))


def tune_optuna(
    train: Recording,
    *,
    n_trials: int,
    study: str,
    storage: str,
    folds: int = 5,
    tracking_uri: str | None = None,
    experiment: str = "bcistream-tuning",
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
    artifacts: str | None = None,
    fixed: dict[str, Any] | None = None,
    data_digest: str | None = None,
) -> TuneResult:
    """Run ``n_trials`` more trials of an Optuna study (created or resumed) on session T.

    Parameters
    ----------
    train : Recording
        Training session (the only data the objective sees).
    n_trials : int
        Trials to add in this call.
    study, storage : str
        Study name and RDB URL (``sqlite:///...``, ``postgresql://...``); shared by processes.
    folds : int
        CV folds.
    tracking_uri : str, optional
        Log each trial as a nested MLflow run under one parent run.
    seed : int, optional
        Seed of the TPE sampler.
    progress : callable, optional
        Called after each trial.
    artifacts : str, optional
        Artifact root if the tuning experiment is created (default beside a sqlite registry).
    fixed : dict, optional
        Parameters set by the user (``--set``): every trial uses them, none searches them.
    data_digest : str, optional
        Fingerprint of ``train``'s files; with the profile it keys the study: a study made for
        another profile or other data refuses the trials (`BcistreamError`).
    """
    import optuna

    if n_trials < 1:
        raise BcistreamError(f"--trials must be >= 1, got {n_trials}")
    try:
        st = optuna.create_study(study_name=study, storage=storage, direction="maximize",
                                 load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed))
    except Exception as exc:  # noqa: BLE001  (bad URL, unreachable database)
        raise BcistreamError(f"cannot open Optuna storage {storage}: {exc}") from None
    _check_key(st, study, train.profile, data_digest)
    st.set_user_attr(PROFILE_ATTR, profile_key(train.profile))
    if data_digest is not None:
        st.set_user_attr(DATA_ATTR, data_digest)
    before = len(st.trials)
    n_ch = train.profile.n_channels
    mlflow = None
    with contextlib.ExitStack() as stack:
        if tracking_uri:
            import mlflow

            from bcistream.training.registry import tracking
            from bcistream.training.tracking import ensure_experiment

            stack.enter_context(tracking(tracking_uri))
            mlflow.set_experiment(experiment_id=ensure_experiment(tracking_uri, experiment, artifacts))
            stack.enter_context(mlflow.start_run(
                run_name=f"tune-{study}", tags={"optuna.study": study, "optuna.storage": storage}))

        def objective(trial) -> float:
            params = suggest_params(trial, n_ch, fixed)
            trial.set_user_attr("pipeline_params", json.dumps(params))
            mean, std = cv_objective(train, params, folds)
            trial.set_user_attr("cv_std", std)
            if mlflow is not None:
                with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                    mlflow.log_params({k: str(v) for k, v in params.items()})
                    mlflow.log_metrics({"cv_mean": mean, "cv_std": std})
                    mlflow.set_tag("optuna.trial", str(trial.number))
            if progress is not None:
                progress(f"trial {trial.number}: cv {mean:.3f}")
            return mean

        # A degenerate combination (e.g. a singular covariance) fails its trial, not the study.
        st.optimize(objective, n_trials=n_trials, catch=(ValueError, np.linalg.LinAlgError))
        if mlflow is not None and any(t.value is not None for t in st.trials):
            mlflow.log_metric("best_cv_mean", st.best_value)
    try:
        best_value, best = st.best_value, best_params(study, storage)
    except (ValueError, BcistreamError):
        raise BcistreamError(f"study '{study}': no trial completed (all failed)") from None
    return TuneResult(study=study, storage=storage, n_trials_total=len(st.trials),
                      n_trials_run=len(st.trials) - before, best_value=float(best_value), best_params=best)


def wandb_sweep_config(n_channels: int, folds: int) -> dict[str, Any]:
    """A W&B Bayesian sweep over the same space as the Optuna study."""
    s = SEARCH_SPACE
    return {
        "method": "bayes",
        "metric": {"name": "cv_mean", "goal": "maximize"},
        "parameters": {
            "n_components": {"min": s["n_components"][0], "max": min(s["n_components"][1], n_channels)},
            "log": {"values": list(s["log"])},
            "reg": {"values": list(s["reg"])},
            "C": {"distribution": "log_uniform_values", "min": s["C"][0], "max": s["C"][1]},
            "kernel": {"values": list(s["kernel"])},
            "gamma": {"distribution": "log_uniform_values", "min": s["gamma"][0], "max": s["gamma"][1]},
            "l_freq": {"min": s["l_freq"][0], "max": s["l_freq"][1]},
            "h_freq": {"min": s["h_freq"][0], "max": s["h_freq"][1]},
            "folds": {"value": folds},
        },
    }


def tune_wandb(train: Recording, *, n_trials: int, project: str, mode: str, folds: int = 5,
               sweep_id: str | None = None) -> str:
    """Run ``n_trials`` of a W&B sweep (created unless ``sweep_id`` joins an existing one).

    Sweeps need the W&B server: this path runs only online (``WANDB_API_KEY`` and network) and
    cannot be exercised by the offline test suite. Offline, it raises a clear error.

    Returns
    -------
    str
        The sweep id (pass it to more agents to share the search).
    """
    if mode != "online":
        raise BcistreamError(
            f"W&B sweeps need W&B online (set WANDB_API_KEY; current mode '{mode}'); "
            "use --engine optuna for offline tuning"
        )
    import wandb

    n_ch = train.profile.n_channels
    sid = sweep_id or wandb.sweep(wandb_sweep_config(n_ch, folds), project=project)

    def run_one() -> None:
        with wandb.init() as run:
            raw = dict(run.config)
            params = _to_pipeline(raw, n_ch)
            mean, std = cv_objective(train, params, int(raw.get("folds", folds)))
            run.log({"cv_mean": mean, "cv_std": std, "pipeline_params": json.dumps(params)})

    wandb.agent(sid, function=run_one, count=n_trials, project=project)
    return sid
