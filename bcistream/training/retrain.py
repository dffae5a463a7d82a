"""Retrain from recorded trials: base data + recorded trials -> challenger -> the promotion gate.

Time-ordered split: the most recent ``holdout_fraction`` of the recorded trials is held out; the
challenger is fitted on the base recordings (e.g. the subject's calibration session) plus the
OLDER recorded trials only, so it never trains on the future. Champion and challenger are then
judged by `promotion.promote` on the same held-out raw trials. The registered challenger carries
``retrain.recorded_until`` (newest trial it saw): the next run counts only trials after it as new.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bcistream.data.recording import Recording
from bcistream.decoders import build_pipeline
from bcistream.errors import BcistreamError
from bcistream.pipeline import Epochs, epochs_from_recording, fit_filtered
from bcistream.training.params import decoder_params_tag, pipeline_params
from bcistream.training.promotion import LabelledTrials, PromotionDecision, PromotionPolicy, promote
from bcistream.training.recorded import RecordedTrials, load_recorded
from bcistream.training.registry import model_versions, register_model, tracking
from bcistream.training.tracking import ensure_experiment

__all__ = ["RetrainConfig", "RetrainMetrics", "RetrainOutcome", "retrain", "retrain_loop", "split_by_time"]

log = logging.getLogger(__name__)

#: Version tag: unix time of the newest recorded trial a retrain has seen.
RECORDED_UNTIL = "retrain.recorded_until"


@dataclass(frozen=True)
class RetrainConfig:
    """What a retrain reads, where it registers, and when it gives up.

    Attributes
    ----------
    tracking_uri, name : str
        MLflow registry and registered model name.
    store_url : str
        Store of recorded trials (folder or ``gs://bucket/prefix``).
    since : float, optional
        Ignore trials recorded before this unix time.
    min_new_trials : int
        Fewest trials newer than the last retrain needed to train at all.
    holdout_fraction : float
        Most recent share of recorded trials held out for the gate.
    policy : PromotionPolicy
        The gate (its ``min_trials`` is the fewest held-out trials).
    params : dict, optional
        ``decoder`` and its parameters (default `pipeline_params()`).
    experiment : str
    cache_dir : Path, optional
        Download cache of a ``gs://`` store.
    """

    tracking_uri: str
    name: str
    store_url: str
    since: float | None = None
    min_new_trials: int = 20
    holdout_fraction: float = 0.3
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    params: dict[str, Any] | None = None
    experiment: str = "bcistream"
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise BcistreamError(f"--holdout-fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.min_new_trials < 1:
            raise BcistreamError(f"--min-new-trials must be >= 1, got {self.min_new_trials}")


@dataclass
class RetrainOutcome:
    """What one retrain did. ``result``: nothing-new, too-few, promoted, refused or error."""

    result: str
    message: str
    n_recorded: int = 0
    n_new: int = 0
    n_train_recorded: int = 0
    n_heldout: int = 0
    n_base: int = 0
    challenger: str | None = None
    run_id: str | None = None
    decision: PromotionDecision | None = None
    seconds: float = 0.0

    @property
    def trained(self) -> bool:
        """A challenger was registered."""
        return self.challenger is not None


class RetrainMetrics:
    """``bcistream_retrain_runs_total{result}`` and ``bcistream_promotions_total`` on a given registry."""

    def __init__(self, registry, namespace: str = "bcistream") -> None:
        from prometheus_client import Counter, Gauge

        self.runs = Counter("retrain_runs", "Retrain runs by result", ["result"], namespace=namespace,
                            registry=registry)
        self.promotions = Counter("promotions", "Challengers promoted to champion", namespace=namespace,
                                  registry=registry)
        self.last_run = Gauge("retrain_last_run_timestamp_seconds", "Unix time of the last retrain",
                              namespace=namespace, registry=registry)

    def observe(self, outcome: RetrainOutcome) -> None:
        """Count one outcome."""
        self.runs.labels(result=outcome.result).inc()
        if outcome.result == "promoted":
            self.promotions.inc()
        self.last_run.set(time.time())


def split_by_time(trials: RecordedTrials, fraction: float) -> tuple[RecordedTrials, RecordedTrials]:
    """(older, most recent ``ceil(fraction * n)``) of trials already in time order."""
    n = len(trials)
    n_held = min(n, max(1, math.ceil(fraction * n))) if n else 0
    return trials.subset(slice(0, n - n_held)), trials.subset(slice(n - n_held, n))


def _seen_until(tracking_uri: str, name: str) -> float | None:
    """Newest recorded trial any registered version was trained or judged with."""
    try:
        rows = model_versions(tracking_uri, name)
    except BcistreamError:
        return None
    values = []
    for row in rows:
        try:
            values.append(float(row["tags"][RECORDED_UNTIL]))
        except (KeyError, ValueError):
            continue
    return max(values) if values else None


def _fit(base: Sequence[Recording], recorded: RecordedTrials, params: dict[str, Any]):
    prof = recorded.profile
    pipe = build_pipeline(prof, params)
    parts = []
    for rec in base:
        prof.check_compatible(rec.profile)
        ep = epochs_from_recording(pipe, rec)
        if len(ep.y):
            parts.append((ep.X, np.asarray(ep.y, dtype=str)))
    if len(recorded):
        ep = recorded.epochs(pipe)
        parts.append((ep.X, np.asarray(ep.y, dtype=str)))
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    n = len(y)
    return fit_filtered(pipe, Epochs(X=X, y=y.astype(object), cue_index=np.arange(n),
                                     window_end=np.zeros(n, dtype=int)))


def retrain(config: RetrainConfig, base: Sequence[Recording] = (), *,
            on_promote: Callable[[PromotionDecision], None] | None = None) -> RetrainOutcome:
    """One retrain: load, split by time, fit, log and register a challenger, pass it through the gate.

    Parameters
    ----------
    config : RetrainConfig
    base : sequence of Recording
        Base training data (e.g. the subject's session T); may be empty.
    on_promote : callable, optional
        Given to `promote` (e.g. publish on the ``model-updates`` topic).

    Returns
    -------
    RetrainOutcome
        ``nothing-new`` / ``too-few`` when there is nothing worth training on (no challenger).
    """
    import mlflow

    t0 = time.monotonic()
    recorded = load_recorded(config.store_url, config.since, cache_dir=config.cache_dir)
    n = len(recorded)
    seen = _seen_until(config.tracking_uri, config.name)
    n_new = int(np.sum(recorded.recorded_at > seen)) if seen is not None else n
    out = RetrainOutcome(result="nothing-new", message="", n_recorded=n, n_new=n_new,
                         n_base=sum(len(r.cues) for r in base))
    if n_new == 0:
        out.message = f"nothing new: {n} recorded trial(s) in {config.store_url}, none after the last retrain"
        return out
    if n_new < config.min_new_trials:
        out.result = "too-few"
        out.message = f"too few new trials: {n_new} < --min-new-trials {config.min_new_trials}"
        return out
    older, heldout = split_by_time(recorded, config.holdout_fraction)
    out.n_train_recorded, out.n_heldout = len(older), len(heldout)
    if len(heldout) < config.policy.min_trials:
        out.result = "too-few"
        out.message = (f"too few trials to judge: {len(heldout)} held out of {n} "
                       f"(< {config.policy.min_trials}; record more or raise --holdout-fraction)")
        return out
    params = pipeline_params(config.params)
    pipe = _fit(base, older, params)
    until = float(recorded.recorded_at.max())
    exp_id = ensure_experiment(config.tracking_uri, config.experiment)
    with tracking(config.tracking_uri):
        mlflow.set_experiment(experiment_id=exp_id)
        with mlflow.start_run(run_name=time.strftime("retrain-%Y%m%d-%H%M%S")) as run:
            out.run_id = run.info.run_id
            mlflow.log_params({**{k: str(v) for k, v in params.items()}, "store": config.store_url,
                               "since": str(config.since), "holdout_fraction": config.holdout_fraction,
                               "kind": "retrain"})
            mlflow.log_metrics({"n_base_trials": out.n_base, "n_recorded_train": len(older),
                                "n_heldout": len(heldout), "n_new": n_new})
            online = heldout.online_accuracy()
            if online is not None:
                mlflow.log_metric("heldout_online_accuracy", online)
            out.challenger = register_model(
                pipe, tracking_uri=config.tracking_uri, name=config.name, run_id=run.info.run_id,
                alias="challenger",
                tags={RECORDED_UNTIL: f"{until:.6f}", "retrain.n_recorded_train": len(older),
                      "retrain.n_heldout": len(heldout), "retrain.n_base": out.n_base,
                      "decoder.params": decoder_params_tag(params)},
            )
    decision = promote(LabelledTrials(X=heldout.X, y=heldout.y, profile=heldout.profile),
                       tracking_uri=config.tracking_uri, name=config.name, challenger=out.challenger,
                       policy=config.policy, on_promote=on_promote)
    with tracking(config.tracking_uri):
        scores = {"heldout_challenger_" + decision.metric: decision.challenger_score,
                  "heldout_champion_" + decision.metric: decision.champion_score}
        mlflow.tracking.MlflowClient(config.tracking_uri).log_batch(
            out.run_id, metrics=[mlflow.entities.Metric(k, float(v), int(time.time() * 1000), 0)
                                 for k, v in scores.items() if v is not None])
    out.decision = decision
    out.result = "promoted" if decision.promoted else "refused"
    out.message = decision.summary()
    out.seconds = time.monotonic() - t0
    return out


def retrain_loop(config: RetrainConfig, base: Sequence[Recording], every: float, stop: threading.Event, *,
                 on_outcome: Callable[[RetrainOutcome], None] | None = None,
                 on_promote: Callable[[PromotionDecision], None] | None = None) -> int:
    """Retrain every ``every`` seconds until ``stop`` is set; return the number of runs.

    An error in one run is reported through ``on_outcome`` (result ``error``) and the loop goes on.
    """
    runs = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            outcome = retrain(config, base, on_promote=on_promote)
        except Exception as exc:  # noqa: BLE001  (a scheduled job must survive one bad run)
            log.warning("retrain failed: %s: %s", type(exc).__name__, exc)
            outcome = RetrainOutcome(result="error", message=f"{type(exc).__name__}: {exc}")
        runs += 1
        if on_outcome is not None:
            on_outcome(outcome)
        stop.wait(max(0.0, every - (time.monotonic() - started)))
    return runs
