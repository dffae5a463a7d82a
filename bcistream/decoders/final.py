"""The final estimator of a fitted pipeline evaluated from its fitted parameters with numpy.

sklearn's ``predict_proba`` validates its input and dispatches through several layers on every
call; for one row that overhead is ~1 ms, ~90 % of the engine's deciding call. The functions here
compute the same probabilities from the fitted attributes (``coef_``, ``intercept_``, the
calibration's sigmoid ``a_``/``b_``, MDM's class means) in a few numpy operations. Each is proven
equal to the sklearn / pyriemann estimator by ``tests/test_decoders_final.py``. Estimators this
module does not know (e.g. a non-linear SVC) fall back to the estimator's own ``predict_proba``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

__all__ = ["FinalStep", "compile_final", "softmax"]


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax (as ``sklearn.utils.extmath.softmax``)."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _expit(z: np.ndarray) -> np.ndarray:
    return expit(z)  # scipy's: no overflow warning for large |z|


def _two_columns(p1: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p1, p1], axis=1)


def _ovr(n_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """SVC's one-vs-rest decision from one-vs-one values, as three small products.

    Equals ``sklearn.utils.multiclass._ovr_decision_function(dec < 0, -dec, n_classes)``: pair
    ``k = (i, j)`` adds ``dec_k`` to class i's confidence and subtracts it from j's, and gives
    a vote to i when ``dec_k >= 0``, else to j.
    """
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    sign = np.zeros((len(pairs), n_classes))
    to_i = np.zeros((len(pairs), n_classes))
    to_j = np.zeros((len(pairs), n_classes))
    for k, (i, j) in enumerate(pairs):
        sign[k, i], sign[k, j] = 1.0, -1.0
        to_i[k, i] = 1.0
        to_j[k, j] = 1.0

    def ovr(dec: np.ndarray) -> np.ndarray:
        conf = dec @ sign
        pos = (dec >= 0).astype(np.float64)
        votes = pos @ to_i + (1.0 - pos) @ to_j
        return votes + conf / (3 * (np.abs(conf) + 1))
    return ovr


def _linear(coef: np.ndarray, intercept: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    w = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)
    b = np.asarray(intercept, dtype=np.float64)
    return lambda F: F @ w + b


def _decision(est: object) -> Callable[[np.ndarray], np.ndarray] | None:
    """The ``decision_function`` of a linear estimator as numpy, 1-D for two classes; else None."""
    if isinstance(est, SVC):
        if est.kernel != "linear" or est.decision_function_shape != "ovr":
            return None
        lin = _linear(est.coef_, est.intercept_)
        n = len(est.classes_)
        if n == 2:
            return lambda F: lin(F)[:, 0]
        ovr = _ovr(n)
        return lambda F: ovr(lin(F))
    if isinstance(est, (LinearDiscriminantAnalysis, LogisticRegression)):
        lin = _linear(est.coef_, est.intercept_)
        if len(est.classes_) == 2:
            return lambda F: lin(F)[:, 0]
        return lin
    return None


class FinalStep:
    """Class probabilities from features, evaluated with numpy (or the estimator as fallback).

    Attributes
    ----------
    classes : ndarray
        Class names in column order.
    native : bool
        True when evaluated with numpy, False when it calls the estimator's ``predict_proba``.
    """

    def __init__(self, proba: Callable[[np.ndarray], np.ndarray], classes: np.ndarray,
                 native: bool) -> None:
        self._proba = proba
        self.classes = np.asarray(classes)
        self.native = native

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n, n_classes), for features of shape (n, n_features)."""
        return self._proba(np.asarray(features, dtype=np.float64))


def _calibrated(clf: CalibratedClassifierCV) -> Callable[[np.ndarray], np.ndarray] | None:
    if len(clf.calibrated_classifiers_) != 1:
        return None  # ensemble=True averages several fits: leave it to sklearn
    cal = clf.calibrated_classifiers_[0]
    if cal.method != "sigmoid":
        return None
    dec = _decision(cal.estimator)
    if dec is None:
        return None
    n = len(clf.classes_)
    a = np.array([c.a_ for c in cal.calibrators], dtype=np.float64)
    b = np.array([c.b_ for c in cal.calibrators], dtype=np.float64)
    if n == 2:
        def two(F: np.ndarray) -> np.ndarray:
            p = _two_columns(_expit(-(a[0] * dec(F) + b[0])))
            return np.minimum(p, 1.0, out=p, where=p <= 1.0 + 1e-5)
        return two
    # Calibrators follow the estimator's classes, which equal the calibrated classes here.
    if not np.array_equal(np.asarray(cal.estimator.classes_), np.asarray(clf.classes_)):
        return None

    def multi(F: np.ndarray) -> np.ndarray:
        p = _expit(-(dec(F) * a + b))
        den = p.sum(axis=1, keepdims=True)
        if den.all():
            p /= den
        else:  # every calibrator said 0 for a row: uniform, as sklearn
            p = np.divide(p, den, out=np.full_like(p, 1.0 / n), where=den != 0)
        return np.minimum(p, 1.0, out=p, where=p <= 1.0 + 1e-5)
    return multi


def compile_final(est: object, *, features_to_input: Callable[[np.ndarray], np.ndarray] | None = None,
                  native: Callable[[np.ndarray], np.ndarray] | None = None) -> FinalStep:
    """Compile a fitted final estimator into a `FinalStep`.

    Parameters
    ----------
    est : estimator
        Fitted: ``CalibratedClassifierCV`` (sigmoid, ``ensemble=False``) around a linear SVC, LDA or
        logistic regression; ``LinearDiscriminantAnalysis``; ``LogisticRegression``. Anything else
        is called through its own ``predict_proba``.
    features_to_input : callable, optional
        Maps feature vectors to the estimator's input for the fallback (e.g. unpacks matrices).
    native : callable, optional
        A numpy evaluation supplied by the caller (e.g. MDM distances); used as is.

    Returns
    -------
    FinalStep
    """
    classes = np.asarray(est.classes_)
    if native is not None:
        return FinalStep(native, classes, True)
    proba: Callable[[np.ndarray], np.ndarray] | None = None
    if isinstance(est, CalibratedClassifierCV):
        proba = _calibrated(est)
    elif isinstance(est, (LinearDiscriminantAnalysis, LogisticRegression)):
        dec = _decision(est)
        if dec is not None:
            if len(classes) == 2:
                proba = lambda F: _two_columns(_expit(dec(F)))  # noqa: E731
            else:
                proba = lambda F: softmax(dec(F))  # noqa: E731
    if proba is not None:
        return FinalStep(proba, classes, True)
    unpack = features_to_input or (lambda F: F)
    return FinalStep(lambda F: np.asarray(est.predict_proba(unpack(F)), dtype=np.float64), classes, False)
