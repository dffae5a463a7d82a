"""Fast unit tests of the training room: parameters, data helpers, registry refusals, gate rules."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from bcistream.data.profiles import load_profile
from bcistream.data.recording import Cue, Recording
from bcistream.errors import BcistreamError
from bcistream.pipeline import Epochs, make_pipeline
from bcistream.training.datasets import concat_recordings, fingerprint, fingerprint_digest
from bcistream.training.params import parse_overrides, pipeline_params
from bcistream.training.promotion import (
    CheckFailed,
    LabelledTrials,
    PromotionPolicy,
    probe_check,
    promote,
    score_heldout,
)
from bcistream.training.registry import TRUSTED_TYPES, ModelError, alias_version, load_model
from bcistream.training.tracking import artifact_location, wandb_mode

PROFILE = load_profile()


def _toy_trials(n_per_class: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw trials where each class boosts a 12 Hz rhythm in its own channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(PROFILE.window_samples + 250) / PROFILE.sfreq
    X, y = [], []
    for k, cls in enumerate(PROFILE.class_names):
        for _ in range(n_per_class):
            x = rng.standard_normal((PROFILE.n_channels, t.size)) * 1e-6
            x[3 * k] += 5e-6 * np.sin(2 * np.pi * 12 * t + rng.uniform(0, 6))
            X.append(x)
            y.append(cls)
    return np.stack(X), np.array(y)


@pytest.fixture(scope="module")
def toy_model():
    X, y = _toy_trials()
    return make_pipeline(None, n_components=4).fit(X, y), X, y


def test_parse_overrides():
    assert parse_overrides(["C=0.5", "kernel=rbf", "reg=none", "log=false", "n_components=4"]) == {
        "C": 0.5, "kernel": "rbf", "reg": None, "log": False, "n_components": 4}
    with pytest.raises(BcistreamError, match="key=value"):
        parse_overrides(["C"])
    with pytest.raises(BcistreamError, match="unknown parameter 'bogus'"):
        parse_overrides(["bogus=1"])
    params = pipeline_params({"C": 2.0, "l_freq": 6.0}, {"C": 3.0})
    assert params["C"] == 3.0 and params["l_freq"] == 6.0 and params["kernel"] == "linear"
    with pytest.raises(BcistreamError, match="unknown pipeline parameters"):
        pipeline_params({"x": 1})


def test_wandb_mode_and_artifact_location(tmp_path):
    assert wandb_mode("offline", {}) == "offline"
    assert wandb_mode("offline", {"WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode("disabled", {"WANDB_API_KEY": "k"}) == "disabled"
    with pytest.raises(BcistreamError, match="wandb mode"):
        wandb_mode("sometimes", {})
    loc = artifact_location(f"sqlite:///{tmp_path}/reg/mlflow.db")
    assert loc == (tmp_path / "reg" / "mlartifacts").as_uri()
    assert artifact_location("http://127.0.0.1:5000") is None


def test_fingerprint_is_content_based(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    fp = fingerprint([a, b])
    assert fp[0]["file"] == "a.bin" and fp[0]["bytes"] == 3 and len(fp[0]["sha256"]) == 64
    assert fingerprint_digest(fp) == fingerprint_digest(list(reversed(fp)))
    b.write_bytes(b"TWO")
    assert fingerprint_digest(fingerprint([a, b])) != fingerprint_digest(fp)


def test_concat_recordings_restarts_the_filter():
    prof = PROFILE
    rng = np.random.default_rng(1)
    r1 = Recording(rng.standard_normal((prof.n_channels, 1000)), prof, (Cue(10, "left"),), "r1")
    r2 = Recording(rng.standard_normal((prof.n_channels, 800)), prof, (Cue(20, "right", True),), "r2")
    joined = concat_recordings([r1, r2])
    assert joined.n_samples == 1801 and np.isnan(joined.data[:, 1000]).all()
    assert [(c.sample, c.label, c.rejected) for c in joined.cues] == [(10, "left", False),
                                                                      (1021, "right", True)]
    with pytest.raises(BcistreamError):
        concat_recordings([])


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory):
    """One empty sqlite registry for the tests below (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.mark.slow
def test_alias_version_of_empty_registry(empty_registry):
    uri = empty_registry
    assert alias_version(uri, "nothing") is None
    with pytest.raises(ModelError, match="no registered model named 'nothing' .*registry holds no models"):
        load_model("models:/nothing@champion", uri)
    with pytest.raises(ModelError, match="expected models:/NAME@ALIAS"):
        load_model("models:/nothing", uri)


def test_pickled_model_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": {
        "pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}}))
    # If this were ever unpickled it would fail loudly; it must be refused before that.
    (folder / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="only skops models are loaded"):
        load_model(str(folder), "unused")


class Untrusted:
    """A class skops must not rebuild: it is not in TRUSTED_TYPES."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_untrusted_types_are_refused_whatever_the_model_claims(tmp_path, toy_model):
    import mlflow.sklearn
    from sklearn.pipeline import Pipeline

    pipe, _, _ = toy_model
    evil = Pipeline([("filter", pipe.named_steps["filter"]), ("x", Untrusted())])
    here = f"{Untrusted.__module__}.Untrusted"
    # The model folder itself trusts the class; the loader must still refuse it.
    mlflow.sklearn.save_model(evil, tmp_path / "evil", serialization_format="skops",
                              skops_trusted_types=[*TRUSTED_TYPES, here], pip_requirements=[])
    with pytest.raises(ModelError, match="untrusted types"):
        load_model(str(tmp_path / "evil"), "unused")
    # The project's own pipeline saved the same way loads.
    mlflow.sklearn.save_model(pipe, tmp_path / "good", serialization_format="skops",
                              skops_trusted_types=list(TRUSTED_TYPES), pip_requirements=[])
    loaded = load_model(str(tmp_path / "good"), "unused")
    assert loaded.version.startswith("local") and loaded.profile == PROFILE and loaded.alias is None


def test_probe_check_and_scoring_of_raw_trials(toy_model):
    pipe, X, y = toy_model
    probe_check(pipe, X[:3])
    scores, n = score_heldout(pipe, LabelledTrials(X, y, PROFILE))
    assert n == len(y) and scores["accuracy"] > 0.9

    class Liar:
        def predict_proba(self, X):
            return np.full((len(X), 4), 0.5)

        def predict(self, X):
            return np.array(["left"] * len(X))

        named_steps = pipe.named_steps

        def __getitem__(self, i):
            return pipe[i]

    with pytest.raises(CheckFailed, match="do not sum to 1"):
        probe_check(Liar(), X[:2])


def test_filtered_epochs_are_refused_as_heldout(toy_model):
    pipe, X, y = toy_model
    ep = Epochs(X=X[..., -750:], y=y, cue_index=np.arange(len(y)), window_end=np.arange(len(y)))
    with pytest.raises(BcistreamError, match="not filtered Epochs"):
        score_heldout(pipe, ep)


def test_policy_validation():
    with pytest.raises(BcistreamError, match="accuracy' or 'kappa"):
        PromotionPolicy(metric="f1")
    with pytest.raises(BcistreamError):
        PromotionPolicy(margin=-0.1)


@pytest.mark.slow
def test_missing_challenger_is_refused(empty_registry):
    d = promote([], tracking_uri=empty_registry, name="nothing")
    assert not d.promoted and d.challenger is None and "nothing to judge" in d.reasons[-1]


def test_scalp_maps_skipped_without_montage_positions(tmp_path, toy_model):
    from bcistream.data.profiles import Profile
    from bcistream.training.plots import confusion_png, topomap_png

    pipe, _, _ = toy_model
    path, note = topomap_png(pipe, tmp_path / "topo.png")
    assert path is not None and path.stat().st_size > 1000 and note == ""
    odd = Profile.from_dict({**PROFILE.to_dict(), "name": "odd", "rename": {},
                             "channels": [f"X{i}" for i in range(PROFILE.n_channels)]})
    pipe.named_steps["filter"].profile = odd.to_dict()
    try:
        path, note = topomap_png(pipe, tmp_path / "odd.png")
    finally:
        pipe.named_steps["filter"].profile = PROFILE.to_dict()
    assert path is None and "no position" in note and not (tmp_path / "odd.png").exists()
    conf = confusion_png(np.eye(4, dtype=int) * 3, list(PROFILE.class_names), tmp_path / "c.png")
    assert conf.stat().st_size > 1000
