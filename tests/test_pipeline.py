"""The one decoding pipeline: estimator contract, profile, pre-roll and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from bcistream.data.profiles import load_profile
from bcistream.errors import ParameterError
from bcistream.pipeline import CausalBandpass, csp_filters, make_pipeline, pipeline_profile, power_to_features


def toy_trials(n_per_class: int = 12, pre: int = 250, seed: int = 0):
    """Raw trials (pre-roll + window): 10 Hz power on C3 for 'left', on C4 for 'right'."""
    prof = load_profile()
    rng = np.random.default_rng(seed)
    n_t = pre + prof.window_samples
    t = np.arange(n_t) / prof.sfreq
    X, y = [], []
    for label, ch in (("left", "C3"), ("right", "C4")):
        idx = prof.channels.index(ch)
        for _ in range(n_per_class):
            x = rng.normal(scale=5e-6, size=(prof.n_channels, n_t))
            x[idx] += 8e-6 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
            X.append(x)
            y.append(label)
    return np.array(X), np.array(y)


def test_steps_and_profile():
    pipe = make_pipeline()
    assert list(pipe.named_steps) == ["filter", "csp", "clf"]
    assert pipeline_profile(pipe) == load_profile()


def test_estimator_contract_clone_params_cv_and_grid_search():
    X, y = toy_trials()
    pipe = make_pipeline(n_components=4)
    params = pipe.get_params()
    assert params["csp__n_components"] == 4 and params["filter__order"] == 4
    twin = clone(pipe)
    assert twin.get_params()["filter__profile"] == params["filter__profile"]
    twin.set_params(clf__estimator__C=0.5, filter__l_freq=7.0)
    assert twin.named_steps["clf"].estimator.C == 0.5
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.8
    grid = GridSearchCV(pipe, {"csp__n_components": [2, 4]}, cv=3).fit(X, y)
    assert grid.best_params_["csp__n_components"] in (2, 4)
    assert set(grid.predict(X)) <= {"left", "right"}


def test_labels_are_class_names_and_argmax_of_probabilities():
    X, y = toy_trials()
    pipe = make_pipeline(n_components=2).fit(X, y)
    proba = pipe.predict_proba(X)
    labels = pipe.predict(X)
    classes = pipe.named_steps["clf"].classes_
    assert list(classes) == ["left", "right"]
    np.testing.assert_array_equal(labels, classes[proba.argmax(axis=1)])
    assert (labels == y).mean() > 0.9


def test_preroll_is_dropped_and_features_match_fast_accessors():
    X, y = toy_trials()
    pipe = make_pipeline(n_components=2).fit(X, y)
    filt = pipe.named_steps["filter"]
    out = filt.transform(X)
    assert out.shape == (X.shape[0], 22, 750)
    # The accessors the streaming engine uses reproduce CSP.transform exactly.
    W = csp_filters(pipe)
    power = np.einsum("kc,nct->nkt", W, out) ** 2
    feats = power_to_features(pipe, power.mean(axis=2))
    np.testing.assert_allclose(feats, pipe.named_steps["csp"].transform(out), rtol=1e-10)


def test_standardised_features_when_log_is_false():
    X, y = toy_trials()
    pipe = make_pipeline(n_components=2, log=False).fit(X, y)
    out = pipe.named_steps["filter"].transform(X)
    power = (np.einsum("kc,nct->nkt", csp_filters(pipe), out) ** 2).mean(axis=2)
    np.testing.assert_allclose(power_to_features(pipe, power),
                               pipe.named_steps["csp"].transform(out), rtol=1e-10)


@pytest.mark.parametrize(("n", "allowed"), [(0, "must be >= 1"), (23, "must be <= the 22 channels")])
def test_n_components_bounded_by_channels(n, allowed):
    with pytest.raises(ParameterError, match=f"make_pipeline: n_components={n} — n_components {allowed}"):
        make_pipeline(n_components=n)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, 21, 800), "expected 22 channels, got 21"),
     ((2, 22, 700), "at least 750 samples"),
     ((22, 800), "expected epochs of shape")],
)
def test_transform_refuses_wrong_shapes(shape, message):
    filt = make_pipeline().named_steps["filter"].fit()
    with pytest.raises(ValueError, match=message):
        filt.transform(np.zeros(shape))


def test_transform_refuses_nan():
    filt = make_pipeline().named_steps["filter"].fit()
    X = np.zeros((1, 22, 800))
    X[0, 3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        filt.transform(X)


def test_band_edges_are_validated():
    # When the pipeline is made (naming make_pipeline's parameters) ...
    with pytest.raises(ParameterError, match="make_pipeline: l_freq=30 must be below h_freq=8"):
        make_pipeline(l_freq=30.0, h_freq=8.0)
    # ... and by the filter itself, for a step built by hand.
    with pytest.raises(ValueError, match="band edges"):
        CausalBandpass(None, l_freq=30.0, h_freq=8.0).fit()
