"""Honest evaluation of the pipeline: session T -> session E, and within-session CV on T.

Nothing is tuned on the evaluation session. Epochs come from the continuously filtered recording
(see `bcistream.pipeline.epochs`); the filter learns nothing, so filtering before the CV split
leaks nothing across folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from bcistream.data.recording import Recording
from bcistream.decoders import build_pipeline
from bcistream.pipeline import (
    Epochs,
    check_trials_per_class,
    decode_filtered,
    epochs_from_recording,
    fit_filtered,
    min_trials_per_class,
    pipeline_profile,
)

__all__ = ["SubjectResult", "cross_validate", "evaluate_subject", "score_epochs"]


@dataclass
class SubjectResult:
    """Evaluation of one subject.

    Attributes
    ----------
    subject : str
    accuracy, kappa : float or None
        T -> E; ``None`` when there is no labelled evaluation session.
    cv_mean, cv_std : float
        Stratified k-fold CV accuracy on session T.
    confusion : ndarray or None
        T -> E confusion matrix (rows true, columns predicted, profile class order).
    classes : list of str
    n_train, n_test : int
    excluded : dict
        Session -> {cue index: reason} for trials left out.
    pipeline : Pipeline
        Fitted on all usable T trials.
    """

    subject: str
    accuracy: float | None
    kappa: float | None
    cv_mean: float
    cv_std: float
    confusion: np.ndarray | None
    classes: list[str]
    n_train: int
    n_test: int
    excluded: dict[str, dict[int, str]] = field(default_factory=dict)
    pipeline: Pipeline | None = None

    def metrics(self) -> dict[str, float]:
        """Flat numeric metrics (for tables and trackers)."""
        out = {"cv_mean": self.cv_mean, "cv_std": self.cv_std,
               "n_train": float(self.n_train), "n_test": float(self.n_test)}
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy
            out["kappa"] = float(self.kappa)
        return out


def cross_validate(pipe: Pipeline, epochs: Epochs, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Stratified k-fold accuracies of ``pipe`` on filtered epochs (fold count capped by class size)."""
    y = np.asarray(epochs.y, dtype=str)
    need = min_trials_per_class(pipe)
    check_trials_per_class(pipe, y, need=need + 1)
    smallest = int(min(np.unique(y, return_counts=True)[1]))
    k = min(folds, smallest)
    # Each training fold must still hold `need` trials of the smallest class.
    while k > 2 and smallest - -(-smallest // k) < need:
        k -= 1
    tail = clone(pipe)
    tail[0].fit()  # the causal filter: designed, learns nothing
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return cross_val_score(tail[1:], epochs.X, y, cv=cv)


def score_epochs(pipe: Pipeline, epochs: Epochs) -> dict[str, Any]:
    """Accuracy, kappa and confusion matrix of a fitted pipeline on labelled filtered epochs."""
    classes = list(pipeline_profile(pipe).class_names)
    y = np.asarray(epochs.y, dtype=str)
    pred, _ = decode_filtered(pipe, epochs.X)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "kappa": float(cohen_kappa_score(y, pred, labels=classes)),
        "confusion": confusion_matrix(y, pred, labels=classes),
        "predictions": pred,
    }


def evaluate_subject(
    train: Recording,
    evaluation: Recording | None = None,
    *,
    params: dict[str, Any] | None = None,
    folds: int = 5,
    subject: str = "",
) -> SubjectResult:
    """Fit on session T, score on session E, and cross-validate on T.

    Parameters
    ----------
    train, evaluation : Recording
        Training and (optional) evaluation sessions, read with the same profile.
    params : dict, optional
        ``decoder`` and its parameters (`bcistream.decoders.build_pipeline`).
    folds : int
        CV folds on T.
    subject : str
        Name used in the result.
    """
    pipe = build_pipeline(train.profile, params)
    tr = epochs_from_recording(pipe, train)
    cv = cross_validate(pipe, tr, folds=folds)
    fit_filtered(pipe, tr)
    excluded = {"T": tr.excluded}
    acc = kappa = conf = None
    n_test = 0
    if evaluation is not None:
        te = epochs_from_recording(pipe, evaluation)
        excluded["E"] = te.excluded
        if len(te.y):
            scores = score_epochs(pipe, te)
            acc, kappa, conf = scores["accuracy"], scores["kappa"], scores["confusion"]
            n_test = len(te.y)
    return SubjectResult(
        subject=subject or train.source,
        accuracy=acc,
        kappa=kappa,
        cv_mean=float(np.mean(cv)),
        cv_std=float(np.std(cv)),
        confusion=conf,
        classes=list(train.profile.class_names),
        n_train=len(tr.y),
        n_test=n_test,
        excluded=excluded,
        pipeline=pipe,
    )
