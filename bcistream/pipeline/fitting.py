"""Fit and apply the pipeline on epochs that are already filtered (cut from the continuous signal)."""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.errors import DataError
from bcistream.pipeline.epochs import Epochs
from bcistream.pipeline.factory import pipeline_profile

__all__ = ["check_trials_per_class", "decode_filtered", "fit_filtered", "min_trials_per_class"]


def min_trials_per_class(pipe: Pipeline) -> int:
    """Fewest trials of each class the pipeline can be fitted on (its calibration folds)."""
    cv = getattr(pipe[-1], "cv", None)  # a calibrated classifier needs its folds per class
    return int(cv) if isinstance(cv, int) else 2


def check_trials_per_class(pipe: Pipeline, y: np.ndarray, need: int | None = None) -> None:
    """Raise `DataError` unless every class has at least ``need`` trials (default: fittable)."""
    need = min_trials_per_class(pipe) if need is None else need
    names, counts = np.unique(np.asarray(y, dtype=str), return_counts=True)
    if len(names) < 2 or counts.min() < need:
        have = dict(zip(names.tolist(), counts.tolist(), strict=True))
        raise DataError(f"too few trials to fit: need >= 2 classes with >= {need} trials each, have {have}")


def fit_filtered(pipe: Pipeline, epochs: Epochs) -> Pipeline:
    """Fit ``pipe`` on filtered epochs: the filter is designed, CSP and classifier are fitted.

    The filter step learns nothing from data, so fitting the rest on windows of the continuously
    filtered recording gives the same model as fitting on raw epochs with a long pre-roll, without
    the transient of a zero-state start.
    """
    check_trials_per_class(pipe, epochs.y)
    pipe[0].fit()  # the causal filter (learns nothing from data)
    pipe[1:].fit(epochs.X, np.asarray(epochs.y, dtype=str))
    return pipe


def class_order(pipe: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Class names in the profile's order, and where each one's probability is in ``predict_proba``.

    scikit-learn classifiers sort ``classes_`` alphabetically; the profile's class map states the
    order users see (``left, right, feet, tongue`` for BCI IV 2a). Every output (decisions,
    HTTP answers, outlets, reports) reorders probability columns with this one function.

    Parameters
    ----------
    pipe : Pipeline
        A fitted pipeline whose final step has ``classes_``.

    Returns
    -------
    names : ndarray of str, shape (n_classes,)
        Profile classes the model knows, in profile order; then any class the profile lacks.
    columns : ndarray of int, shape (n_classes,)
        ``proba[:, columns]`` has its columns in ``names`` order.
    """
    fitted = [str(c) for c in pipe.classes_]
    order = [c for c in pipeline_profile(pipe).class_names if c in fitted]
    order += [c for c in fitted if c not in order]
    return np.asarray(order), np.asarray([fitted.index(c) for c in order], dtype=np.intp)


def decode_filtered(pipe: Pipeline, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class names and probabilities (columns in `class_order`) of filtered windows.

    ``X`` has shape (n, n_channels, window).
    """
    names, columns = class_order(pipe)
    proba = pipe[1:].predict_proba(X)[:, columns]
    return names[np.argmax(proba, axis=1)], proba
