"""Training epochs = the continuous causal filter, then windows: what the live engine sees."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.data.loader import load_recording
from bcistream.data.profiles import load_profile
from bcistream.data.recording import Recording
from bcistream.errors import ProfileError
from bcistream.pipeline import epochs_from_recording, filter_recording, make_pipeline


@pytest.fixture(scope="module")
def rec(fixtures_dir):
    return load_recording(fixtures_dir / "A99T-synthetic.gdf")


def _rel_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))


def test_windows_at_cue_plus_offset_and_rejected_excluded(rec):
    pipe = make_pipeline()
    ep = epochs_from_recording(pipe, rec)
    assert ep.X.shape == (5, 22, 750)
    assert list(ep.y) == ["left", "right", "tongue", "right", "left"]
    assert ep.excluded == {2: "rejected trial"}
    assert list(ep.window_end) == [rec.cues[i].sample + 125 + 750 for i in ep.cue_index]
    with_rejected = epochs_from_recording(pipe, rec, include_rejected=True)
    assert len(with_rejected.y) == 6


def test_epochs_equal_continuous_filter(rec):
    pipe = make_pipeline()
    filtered = filter_recording(pipe, rec)
    ep = epochs_from_recording(pipe, rec, filtered=filtered)
    for x, end in zip(ep.X, ep.window_end, strict=True):
        np.testing.assert_array_equal(x, filtered[:, end - 750 : end])


@pytest.mark.parametrize("pre_s", [1.0, 1.5, 2.0])
def test_preroll_of_one_second_matches_continuous_filter(rec, pre_s):
    pipe = make_pipeline()
    filt = pipe.named_steps["filter"].fit()
    ep = epochs_from_recording(pipe, rec)
    pre = int(pre_s * rec.sfreq)
    for x, end in zip(ep.X, ep.window_end, strict=True):
        raw = rec.data[None, :, end - 750 - pre : end]
        assert _rel_rms(filt.transform(raw)[0], x) < 1e-3


def test_without_preroll_the_transient_is_real(rec):
    pipe = make_pipeline()
    filt = pipe.named_steps["filter"].fit()
    ep = epochs_from_recording(pipe, rec)
    errors = [_rel_rms(filt.transform(rec.data[None, :, end - 750 : end])[0], x)
              for x, end in zip(ep.X, ep.window_end, strict=True)]
    assert min(errors) > 1e-2


def test_missing_stretch_restarts_the_filter(rec):
    pipe = make_pipeline()
    filtered = filter_recording(pipe, rec)
    assert np.isnan(filtered[:, 2750:2850]).all()
    assert np.isfinite(filtered[:, :2750]).all() and np.isfinite(filtered[:, 2850:]).all()
    # After the gap the filter starts from zero state, as the engine does after a reset.
    filt = pipe.named_steps["filter"]
    fresh, _ = filt.filter_continuous(rec.data[:, 2850:3500])
    np.testing.assert_allclose(filtered[:, 2850:3500], fresh)


def test_window_touching_missing_samples_is_excluded():
    prof = load_profile()
    data = np.random.default_rng(0).normal(scale=1e-6, size=(22, 5000))
    data[:, 1200:1210] = np.nan
    from bcistream.data.recording import Cue

    rec = Recording(data, prof, (Cue(1000, "left"), Cue(3000, "right"), Cue(4500, "left")), "mem")
    ep = epochs_from_recording(make_pipeline(), rec)
    assert ep.excluded == {0: "missing samples in the window", 2: "window outside the recording"}
    assert list(ep.y) == ["right"]


def test_window_longer_than_the_trial_is_a_profile_error(rec):
    long = load_profile().model_copy(update={"window_s": 8.0})
    rec_long = Recording(rec.data, long, rec.cues, rec.source)
    with pytest.raises(ProfileError, match="window_s=8 s .* longer than the trial"):
        epochs_from_recording(make_pipeline(long), rec_long)
