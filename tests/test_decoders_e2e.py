"""Decoders end to end: ``--set decoder=...`` through evaluate, train, models, serve and demo."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.data.loader import load_recording
from bcistream.decoders import compile_streaming
from bcistream.pipeline import epochs_from_recording
from bcistream.serving import Client
from tests.serving_support import MODEL_NAME, Server, make_registry


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from bcistream.data.synth import make_small_dataset

    folder = tmp_path_factory.mktemp("decoders-data")
    make_small_dataset(folder, subjects=1, seed=4, n_trials_per_class=8)
    return folder


def test_set_decoder_is_validated_with_one_line_errors(small_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    assert main(["evaluate", "--data", str(small_data), "--set", "decoder=nope"]) == 2
    assert "decoder must be one of csp-svm" in capsys.readouterr().err
    # kernel is a csp-svm parameter: refused for ts-lr, naming the decoder's own parameters.
    assert main(["evaluate", "--data", str(small_data), "--set", "decoder=ts-lr", "--set", "kernel=rbf"]) == 2
    err = capsys.readouterr().err
    assert "decoder 'ts-lr' takes no parameter kernel" in err and "estimator" in err
    # tune: fixed parameters narrow the decoders searched to those that take them.
    assert main(["tune", "--data", str(small_data), "--set", "estimator=lwf", "--decoders", "csp-svm",
                 "--trials", "1"]) == 2
    assert "no searched decoder takes all of them" in capsys.readouterr().err


def test_evaluate_with_another_decoder(small_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    assert main(["evaluate", "--data", str(small_data), "--folds", "3", "--set", "decoder=mdm"]) == 0
    assert "Evaluation of mdm" in capsys.readouterr().out


@pytest.mark.slow
def test_train_registers_decoder_and_models_shows_it(small_data, tmp_path, monkeypatch, capsys):
    from bcistream.training.registry import load_model, model_versions

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    assert main(["train", "--data", str(small_data), "--subject", "1", "--folds", "3", "--no-promote",
                 "--set", "decoder=ts-lr", "--set", "estimator=lwf"]) == 0
    tags = model_versions(uri, "bcistream-A01")[0]["tags"]
    assert tags["decoder"] == "ts-lr" and "estimator=lwf" in tags["decoder.params"]
    loaded = load_model("models:/bcistream-A01/1", uri)  # skops with the trusted pyriemann types
    assert compile_streaming(loaded.pipeline).name == "ts-lr"
    capsys.readouterr()
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "ts-lr" in out and "estimator=lwf" in out


@pytest.mark.slow
def test_tune_searches_decoders_and_reports_nested_cv(small_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert main(["tune", "--data", str(small_data), "--trials", "4", "--storage", storage, "--folds", "3",
                 "--study", "s-dec",
                 "--decoders", "csp-lda,mdm", "--nested", "2", "--seed", "1", "--no-track"]) == 0
    out = capsys.readouterr().out
    assert "optimistic" in out and "nested CV on the training data (2 outer folds, 4 trials each)" in out
    import optuna

    study = optuna.load_study(study_name="s-dec", storage=storage)
    assert {t.params["decoder"] for t in study.trials} <= {"csp-lda", "mdm"}


@pytest.mark.slow
def test_serve_a_riemannian_model(tmp_path):
    registry = make_registry(tmp_path, n_versions=1, decoder="ts-lr")
    pipe = registry.versions["1"]
    dec = compile_streaming(pipe)
    srv = Server({"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
                  "BCISTREAM_TRACKING_URI": registry.tracking_uri, "BCISTREAM_POLL_S": "30"}, cwd=tmp_path)
    try:
        with Client(srv.url) as client:
            info = client.model()
            assert info["decoder"] == "ts-lr" and info["n_features"] == dec.n_features == 253
            rec = load_recording(registry.files["E"])
            ep = epochs_from_recording(pipe, rec)
            feats = dec.offline_features(ep.X[:5])  # tangent vectors, as the engine computes them
            pred = client.classify_features(feats, "1")
            # Columns in the profile's class order, as every answer lists them.
            cols = [list(pipe[-1].classes_).index(c) for c in pred.classes]
            assert pred.classes == [str(c) for c in dec.classes]
            np.testing.assert_allclose(pred.probabilities, pipe[1:].predict_proba(ep.X[:5])[:, cols],
                                       atol=1e-12)
            with pytest.raises(Exception, match="253"):
                client.classify_features(feats[:, :6], "1")
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_with_a_riemannian_decoder_over_kafka(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    code = main(["demo", "--trials-per-class", "6", "--speed", "60", "--no-view", "--transport", "kafka",
                 "--set", "decoder=ts-lr"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    summary = json.loads(next((tmp_path / "home" / "demo").glob("*/summary.json")).read_text())
    # Every cue decided live by the ts-lr champion, equal to the offline pipeline's label.
    assert summary["cue_trials"] == 24 and summary["agreement"] == 1.0
