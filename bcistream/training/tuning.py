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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bcistream.data.profiles import Profile
from bcistream.data.recording import Recording
from bcistream.decoders import DECODERS, build_pipeline, decoder_spec
from bcistream.errors import BcistreamError
from bcistream.pipeline import Epochs, epochs_from_recording, fit_filtered
from bcistream.training.evaluation import cross_validate, score_epochs
from bcistream.training.params import pipeline_params

__all__ = ["SEARCH_SPACE", "NestedResult", "TuneResult", "best_params", "cv_objective", "default_study_name",
           "nested_cv", "profile_key", "suggest_params", "tune_optuna", "tune_wandb", "wandb_sweep_config"]

log = logging.getLogger(__name__)

def _space(decoders: Sequence[str]) -> dict[str, dict[str, tuple]]:
    """Per decoder: Optuna parameter name -> (decoder parameter, distribution spec)."""
    specs = {d: decoder_spec(d).space for d in decoders}
    out: dict[str, dict[str, tuple]] = {}
    for d, space in specs.items():
        out[d] = {}
        for key, dist in space.items():
            # A name shared by decoders with the same distribution stays plain (so TPE learns
            # across decoders); otherwise it is qualified, as Optuna needs one distribution per name.
            same = all(other.get(key, dist) == dist for other in specs.values())
            out[d][key if same else f"{d}.{key}"] = (key, dist)
    return out


#: The search space of each decoder: parameter -> ("int", lo, hi) | ("float", lo, hi, log) |
#: ("cat", choices). Band edges follow the profile's band bounds; CSP components are capped by
#: the channels.
SEARCH_SPACE: dict[str, dict[str, tuple]] = {name: dict(spec.space) for name, spec in DECODERS.items()}


@dataclass(frozen=True)
class TuneResult:
    """Outcome of a tuning call."""

    study: str
    storage: str
    n_trials_total: int
    n_trials_run: int
    best_value: float
    best_params: dict[str, Any]


def _to_pipeline(raw: dict[str, Any], n_channels: int, decoder: str) -> dict[str, Any]:
    """Sampled values -> the full parameter set of ``decoder`` (defaults filled in)."""
    params: dict[str, Any] = {"decoder": decoder}
    for key, value in raw.items():
        if key in decoder_spec(decoder).defaults:
            params[key] = value
    if "n_components" in params and decoder != "fbcsp":
        params["n_components"] = min(int(params["n_components"]), n_channels)
    return pipeline_params(params)


def suggest_params(trial, n_channels: int, decoders: Sequence[str] = ("csp-svm",),
                   fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample a decoder (when several) and its parameters from an Optuna trial.

    ``fixed`` parameters (``--set``) are set, not searched; a fixed ``decoder`` is the only one.
    """
    fixed = dict(fixed or {})
    decoders = [fixed["decoder"]] if "decoder" in fixed else list(decoders)
    name = decoders[0] if len(decoders) == 1 else trial.suggest_categorical("decoder", decoders)
    raw: dict[str, Any] = {}
    for pname, (key, dist) in _space(decoders)[name].items():
        if key in fixed:
            continue
        if dist[0] == "int":
            hi = min(dist[2], n_channels) if key == "n_components" else dist[2]
            raw[key] = trial.suggest_int(pname, min(dist[1], hi), hi)
        elif dist[0] == "float":
            raw[key] = trial.suggest_float(pname, dist[1], dist[2], log=bool(dist[3]))
        else:
            raw[key] = trial.suggest_categorical(pname, list(dist[1]))
    params = _to_pipeline(raw, n_channels, name)
    params.update({k: v for k, v in fixed.items() if k in params})
    return params


class _EpochCache:
    """Epochs of one recording per filter design (trials differing only downstream share them)."""

    def __init__(self, train: Recording) -> None:
        self.train = train
        self._cache: dict[str, Epochs] = {}

    def __call__(self, pipe) -> Epochs:
        key = repr(sorted(pipe[0].get_params().items()))
        if key not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = epochs_from_recording(pipe, self.train)
        return self._cache[key]


def _subset(ep: Epochs, idx: np.ndarray) -> Epochs:
    return Epochs(X=ep.X[idx], y=ep.y[idx], cue_index=ep.cue_index[idx], window_end=ep.window_end[idx])


def cv_objective(train: Recording, params: dict[str, Any], folds: int = 5, *,
                 subset: np.ndarray | None = None, cache: _EpochCache | None = None) -> tuple[float, float]:
    """Mean and std of the CV accuracy on session T for ``params`` (the tuning objective).

    ``subset`` restricts the CV to those trials (the inner loop of `nested_cv`).
    """
    pipe = build_pipeline(train.profile, params)
    epochs = (cache or _EpochCache(train))(pipe)
    if subset is not None:
        epochs = _subset(epochs, subset)
    if len(epochs.y) < 2 * folds:
        raise BcistreamError(f"{train.source}: {len(epochs.y)} usable trials, too few for {folds}-fold CV")
    scores = cross_validate(pipe, epochs, folds=folds)
    return float(np.mean(scores)), float(np.std(scores))


@dataclass(frozen=True)
class NestedResult:
    """Outer-fold accuracies of the whole tuning procedure and what each outer fold chose."""

    scores: list[float]
    chosen: list[dict[str, Any]]

    @property
    def mean(self) -> float:
        """Mean outer-fold accuracy: the honest estimate of the tuned model's accuracy."""
        return float(np.mean(self.scores))


def nested_cv(train: Recording, *, n_trials: int, decoders: Sequence[str], folds: int = 5,
              outer: int = 3, seed: int = 0, fixed: dict[str, Any] | None = None) -> NestedResult:
    """Nested CV on session T: the search runs inside each outer training part only.

    The best CV of a search is optimistic (the maximum of many noisy estimates); scoring each
    outer fold with the model its own inner search chose is not. Session E is never used.
    """
    import optuna
    from sklearn.model_selection import StratifiedKFold

    cache = _EpochCache(train)
    ref = cache(build_pipeline(train.profile, {"decoder": decoders[0]}))
    y = np.asarray(ref.y, dtype=str)
    n_ch = train.profile.n_channels
    scores, chosen = [], []
    splits = StratifiedKFold(n_splits=outer, shuffle=True, random_state=seed).split(y, y)
    for k, (tr, te) in enumerate(splits):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed + k))

        def objective(trial, tr=tr) -> float:
            params = suggest_params(trial, n_ch, decoders, fixed)
            trial.set_user_attr("pipeline_params", json.dumps(params))
            return cv_objective(train, params, folds, subset=tr, cache=cache)[0]

        study.optimize(objective, n_trials=n_trials, catch=(ValueError, np.linalg.LinAlgError))
        best = pipeline_params(json.loads(study.best_trial.user_attrs["pipeline_params"]))
        pipe = build_pipeline(train.profile, best)
        ep = cache(pipe)
        fit_filtered(pipe, _subset(ep, tr))
        scores.append(float(score_epochs(pipe, _subset(ep, te))["accuracy"]))
        chosen.append(best)
    return NestedResult(scores=scores, chosen=chosen)


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
    decoders: Sequence[str] = ("csp-svm",),
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
    decoders : sequence of str
        Decoders searched (with their parameters); one name searches that decoder's parameters.
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
    decoders = [decoder_spec(d).name for d in decoders]
    cache = _EpochCache(train)
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
            params = suggest_params(trial, n_ch, decoders, fixed)
            trial.set_user_attr("pipeline_params", json.dumps(params))
            mean, std = cv_objective(train, params, folds, cache=cache)
            trial.set_user_attr("cv_std", std)
            if mlflow is not None:
                with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                    mlflow.log_params({k: str(v) for k, v in params.items()})
                    mlflow.log_metrics({"cv_mean": mean, "cv_std": std})
                    mlflow.set_tag("optuna.trial", str(trial.number))
            if progress is not None:
                progress(f"trial {trial.number} ({params['decoder']}): cv {mean:.3f}")
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


def wandb_sweep_config(n_channels: int, folds: int, decoder: str = "csp-svm") -> dict[str, Any]:
    """A W&B Bayesian sweep over one decoder's space (the same as the Optuna study's)."""
    params: dict[str, Any] = {}
    for key, dist in decoder_spec(decoder).space.items():
        if dist[0] == "int":
            hi = min(dist[2], n_channels) if key == "n_components" else dist[2]
            params[key] = {"min": dist[1], "max": hi}
        elif dist[0] == "float":
            params[key] = ({"distribution": "log_uniform_values", "min": dist[1], "max": dist[2]}
                           if dist[3] else {"min": dist[1], "max": dist[2]})
        else:
            params[key] = {"values": list(dist[1])}
    params["folds"] = {"value": folds}
    params["decoder"] = {"value": decoder}
    return {"method": "bayes", "metric": {"name": "cv_mean", "goal": "maximize"}, "parameters": params}


def tune_wandb(train: Recording, *, n_trials: int, project: str, mode: str, folds: int = 5,
               sweep_id: str | None = None, decoder: str = "csp-svm") -> str:
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
    sid = sweep_id or wandb.sweep(wandb_sweep_config(n_ch, folds, decoder), project=project)

    def run_one() -> None:
        with wandb.init() as run:
            raw = dict(run.config)
            params = _to_pipeline(raw, n_ch, str(raw.get("decoder", "csp-svm")))
            mean, std = cv_objective(train, params, int(raw.get("folds", folds)))
            run.log({"cv_mean": mean, "cv_std": std, "pipeline_params": json.dumps(params)})

    wandb.agent(sid, function=run_one, count=n_trials, project=project)
    return sid
