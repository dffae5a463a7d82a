"""The final step from fitted parameters (numpy) == the sklearn estimator, for 2-4 classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from bcistream.decoders import compile_final


def _calibrated(est):
    return CalibratedClassifierCV(est, method="sigmoid", cv=3, ensemble=False)


ESTIMATORS = {
    "svm": lambda: _calibrated(SVC(kernel="linear")),
    "lda": LinearDiscriminantAnalysis,
    "lr": lambda: LogisticRegression(max_iter=500),
    "calibrated-lda": lambda: _calibrated(LinearDiscriminantAnalysis()),
}


@pytest.mark.parametrize("n_classes", [2, 3, 4])
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_numpy_final_step_equals_sklearn(kind, n_classes):
    rng = np.random.default_rng(n_classes)
    y = np.array([f"c{i % n_classes}" for i in range(150)])
    X = rng.standard_normal((150, 6))
    X[:, 0] += np.arange(150) % n_classes  # separable enough to fit, not trivially
    est = ESTIMATORS[kind]().fit(X, y)
    final = compile_final(est)
    assert final.native and list(final.classes) == list(est.classes_)
    for scale in (1.0, 30.0):  # near the data, and far out (saturated probabilities)
        Z = rng.standard_normal((64, 6)) * scale
        np.testing.assert_allclose(final.predict_proba(Z), est.predict_proba(Z), rtol=0, atol=1e-12)
        assert list(est.classes_[final.predict_proba(Z).argmax(1)]) == list(est.predict(Z))


def test_unknown_estimators_fall_back_to_their_own_predict_proba():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((90, 4)), np.array(["a", "b", "c"] * 30)
    est = _calibrated(SVC(kernel="rbf")).fit(X, y)
    final = compile_final(est)
    assert not final.native
    np.testing.assert_array_equal(final.predict_proba(X[:5]), est.predict_proba(X[:5]))
