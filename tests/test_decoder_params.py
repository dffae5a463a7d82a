"""Decoder parameters are checked when the pipeline is made, in our words (issue: fresh-user trial).

scikit-learn checks its own parameters only at fit time and names its internals
(``cross_val_predict``, ``cv``); every decoder parameter is refused earlier with a `ParameterError`
naming the Python parameter, the value given and what is allowed.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import bcistream as bs
from bcistream.decoders import DECODERS, make_decoder
from bcistream.errors import BcistreamError, ParameterError
from bcistream.pipeline.params import PARAMS

#: Bad values of every decoder parameter, and a phrase of what is allowed.
BAD: dict[str, list[tuple[object, str]]] = {
    "n_components": [(0, "must be >= 1"), (23, "must be <= the 22 channels"), (2.5, "an integer"),
                     ("six", "an integer")],
    "log": [("yes", "one of True, False"), (1, "one of True, False")],
    "reg": [("bad", "must be none, ledoit_wolf"), (2.0, "a number in [0, 1]")],
    "C": [(-1, "must be > 0"), (0, "must be > 0"), ("x", "a number > 0"), (None, "a number > 0")],
    "kernel": [("bogus", "one of linear, rbf"), ("poly", "one of linear, rbf")],
    "gamma": [("x", "scale, auto or a number > 0"), (-0.1, "scale, auto or a number > 0")],
    "l_freq": [(-1.0, "must be > 0"), (200.0, "below half the rate"), ("low", "a number > 0")],
    "h_freq": [(0, "must be > 0"), (125.0, "below half the rate")],
    "order": [(0, "must be >= 1"), (11, "must be <= 10"), (2.5, "an integer")],
    "estimator": [("bad", "one of oas, lwf, scm, cov")],
    "select_k": [(0, "'all' or an integer >= 1"), ("some", "'all' or an integer >= 1")],
    "clf": [("rf", "one of svm, lda")],
    "calibration_folds": [(0, "must be >= 2"), (1, "must be >= 2"), (2.5, "an integer")],
}

CASES = [(name, key, value, allowed) for name, spec in DECODERS.items() for key in spec.defaults
         for value, allowed in BAD[key]]


def test_every_decoder_parameter_has_a_check_and_bad_values_here():
    for name, spec in DECODERS.items():
        for key in spec.defaults:
            assert PARAMS[key].check is not None, (name, key)
            assert BAD.get(key), f"{name}.{key}: add bad values to this test"
    assert set(BAD) <= set(PARAMS)


@pytest.mark.parametrize(("name", "key", "value", "allowed"), CASES,
                         ids=[f"{n}-{k}={v!r}" for n, k, v, _ in CASES])
def test_make_decoder_refuses_bad_values_naming_the_parameter(name, key, value, allowed):
    with pytest.raises(ParameterError) as info:
        make_decoder(name, **{key: value})
    text = str(info.value)
    assert text.startswith(f"make_decoder({name!r}): {key}={value!r} — {key} ")
    assert allowed in text and "\n" not in text
    assert "cross_val" not in text and "cv" not in text.split()
    assert isinstance(info.value, ValueError) and isinstance(info.value, BcistreamError)


@pytest.mark.parametrize(("key", "value", "allowed"),
                         [(k, v, a) for k in ("n_components", "log", "reg", "C", "kernel", "gamma", "l_freq",
                                              "h_freq", "order", "calibration_folds") for v, a in BAD[k]])
def test_make_pipeline_refuses_bad_values_before_fit(key, value, allowed):
    with pytest.raises(ParameterError, match=re.escape(f"make_pipeline: {key}={value!r} — {key} ")) as info:
        bs.make_pipeline(**{key: value})
    assert allowed in str(info.value)


def test_combinations_are_checked_when_made():
    with pytest.raises(ParameterError, match=r"make_pipeline: l_freq=30 must be below h_freq=8"):
        bs.make_pipeline(l_freq=30.0, h_freq=8.0)
    with pytest.raises(ParameterError, match=r"make_pipeline: l_freq=35 must be below h_freq=30"):
        bs.make_pipeline(l_freq=35.0)  # the profile's h_freq is 30 Hz
    with pytest.raises(ParameterError, match="gamma=0.1 applies to kernel=rbf only"):
        bs.make_pipeline(gamma=0.1)
    with pytest.raises(ParameterError, match="make_decoder\\('ts-lr'\\): l_freq=20 must be below h_freq=10"):
        make_decoder("ts-lr", l_freq=20.0, h_freq=10.0)
    with pytest.raises(ParameterError, match="decoder 'mdm' takes no parameter C"):
        make_decoder("mdm", C=1.0)


def test_montage_limits_follow_the_profile_given():
    # A 3-channel rig at 100 Hz: n_components <= 3 and band edges below 50 Hz.
    kw = {"sfreq": 100.0, "ch_names": ["C3", "Cz", "C4"], "classes": ["left", "right"]}
    with pytest.raises(ParameterError, match="n_components=4 — n_components must be <= the 3 channels"):
        bs.make_pipeline(n_components=4, **kw)
    with pytest.raises(ParameterError, match="h_freq=60.0 — h_freq must be below half the rate .*50 Hz"):
        bs.make_pipeline(h_freq=60.0, **kw)


def test_good_values_build_and_fit_including_numpy_scalars():
    pipe = bs.make_pipeline(sfreq=250.0, ch_names=["C3", "Cz", "C4"], classes=["left", "right"],
                            n_components=np.int64(2), C=np.float64(0.5), kernel="rbf", gamma=0.01,
                            calibration_folds=2, reg="oas", order=np.int32(3))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 3, 750)) * 1e-5, np.array(["left", "right"] * 6)
    assert pipe.fit(X, y).predict(X).shape == (12,)
    for name in DECODERS:
        assert make_decoder(name) is not None  # every default passes its own checks
