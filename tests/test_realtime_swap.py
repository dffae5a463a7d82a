"""Model swap: atomic between batches, refused when incompatible, exact for the new model."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.data.profiles import Profile, load_profile
from bcistream.data.recording import Recording
from bcistream.errors import ProfileError
from bcistream.pipeline import epochs_from_recording, fit_filtered, make_pipeline
from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.memory import MemorySource
from tests.realtime_data import fitted_pipeline, offline_windows, synth_recording


@pytest.fixture(scope="module")
def old():
    return fitted_pipeline(seed=0)


@pytest.fixture(scope="module")
def new():
    # Another version: other training data, fewer components and another band (filter differs too).
    return fitted_pipeline(seed=3, n_components=4, l_freq=9.0, h_freq=28.0)


def proba(pipe, decisions):
    return np.array([[d.probabilities[c] for c in pipe.named_steps["clf"].classes_] for d in decisions])


def stream_with_swap(old, new, rec, swap_after, config=None):
    engine = Engine(old, "v1", config=config or EngineConfig(triggers=("hop",)))
    source = MemorySource({"a": rec, "b": rec}, chunk_size=25)
    before, after = [], []
    while not source.exhausted:
        if source.resume_point() == swap_after and engine.version == "v1":
            engine.swap_model(new, "v2")
        (before if engine.version == "v1" else after).extend(engine.process(source.poll()))
    return engine, before, after


@pytest.mark.parametrize("swap_at_s", [3.2, 9.0])  # segment fits in the raw history / does not
def test_swap_is_atomic_and_matches_the_new_model_offline(old, new, swap_at_s):
    rec = synth_recording(14.0, seed=21)
    swap_after = int(swap_at_s * 250 / 25) * 2
    engine, before, after = stream_with_swap(old, new, rec, swap_after)
    assert before and after
    assert {d.model_version for d in before} == {"v1"} and {d.model_version for d in after} == {"v2"}
    for label, pipe, ds in (("old", old, before), ("new", new, after)):
        for sid in ("a", "b"):
            mine = [d for d in ds if d.stream_id == sid]
            X = offline_windows(pipe, rec, [d.window_end for d in mine])
            np.testing.assert_allclose(proba(pipe, mine), pipe[1:].predict_proba(X), atol=1e-8,
                                       err_msg=label)
    # No hop was skipped or repeated across the swap.
    ends = sorted(d.window_end for d in before + after if d.stream_id == "a")
    assert np.all(np.diff(ends) > 0) and np.all(np.diff(ends) <= 63)
    assert engine.stats()["swaps"] == 1
    assert [e.kind for e in engine.events.drain()] == ["swap"]


def test_incompatible_or_unfitted_model_is_refused_and_old_keeps_running(old):
    prof = load_profile(None)
    other = Profile.from_dict({**prof.to_dict(), "window_s": 2.0})
    rec = synth_recording(40.0, seed=4)
    small = Recording(rec.data, other, rec.cues, "synthetic")
    pipe2 = make_pipeline(other)
    fit_filtered(pipe2, epochs_from_recording(pipe2, small))
    engine = Engine(old, "v1")
    source = MemorySource(rec, chunk_size=100)
    first = engine.process(source.poll())
    with pytest.raises(ProfileError, match="window"):
        engine.swap_model(pipe2, "v2")
    with pytest.raises(ProfileError, match="not a fitted"):
        engine.swap_model(make_pipeline(), "v3")
    rest = []
    while not source.exhausted:
        rest += engine.process(source.poll())
    assert first == [] and rest and {d.model_version for d in rest} == {"v1"}
    assert engine.version == "v1" and engine.stats()["swaps"] == 0
