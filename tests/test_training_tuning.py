"""Tuning: Optuna with sqlite storage resumes a study; trials are logged; the best feeds train."""

from __future__ import annotations

import pytest

from bcistream.cli import main
from bcistream.decoders import build_pipeline
from bcistream.errors import BcistreamError
from bcistream.training.tuning import SEARCH_SPACE, best_params, tune_optuna, tune_wandb, wandb_sweep_config


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    from bcistream.data.synth import make_small_dataset

    folder = tmp_path_factory.mktemp("tune-data")
    make_small_dataset(folder, subjects=1, seed=2, n_trials_per_class=8)
    return folder


@pytest.mark.slow
def test_study_resumes_from_sqlite_storage(small_data, tmp_path, monkeypatch, capsys):
    import optuna

    from bcistream.training.datasets import load_subject
    from bcistream.training.registry import client

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    # 3 trials through the CLI (a separate "process" as far as the study is concerned) ...
    assert main(["tune", "--data", str(small_data), "--subject", "1", "--trials", "3", "--storage", storage,
                 "--study", "s1", "--folds", "3", "--seed", "0"]) == 0
    assert "3 trials (3 new)" in capsys.readouterr().out
    # ... then 2 more through the API: the study resumes with 5.
    train = load_subject(small_data, 1).train
    res = tune_optuna(train, n_trials=2, study="s1", storage=storage, folds=3, tracking_uri=uri, seed=1)
    assert res.n_trials_total == 5 and res.n_trials_run == 2
    study = optuna.load_study(study_name="s1", storage=storage)
    assert len(study.trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # Objective is CV on T: values are accuracies; decoders and their parameters stay in the space.
    for t in study.trials:
        assert 0.0 <= t.value <= 1.0
        space = SEARCH_SPACE[t.params.get("decoder", "csp-svm")]
        # Names shared by decoders with different ranges are qualified ("fbcsp.n_components").
        plain = {k.split(".")[-1]: v for k, v in t.params.items()}
        for key, dist in space.items():
            if dist[0] in ("int", "float"):
                assert dist[1] <= plain[key] <= dist[2]
    # Every trial is an MLflow run: 3 + 2 nested trial runs under two parent runs.
    c = client(uri)
    exp = c.get_experiment_by_name("bcistream-tuning")
    runs = c.search_runs([exp.experiment_id])
    trial_runs = [r for r in runs if r.data.tags.get("optuna.trial") is not None]
    assert len(trial_runs) == 5 and all("cv_mean" in r.data.metrics for r in trial_runs)
    assert all(r.data.tags.get("mlflow.parentRunId") for r in trial_runs)
    # The best trial's parameters build the pipeline and feed `train --from-study`.
    best = best_params("s1", storage)
    assert best == res.best_params
    assert study.best_value == pytest.approx(res.best_value)
    assert best["decoder"] in SEARCH_SPACE
    build_pipeline(None, best)
    for key, value in study.best_trial.params.items():
        if key != "decoder":  # qualified names ("fbcsp.clf") map to the decoder's parameter
            assert best[key.split(".")[-1]] == pytest.approx(value)


def test_best_params_of_missing_study(tmp_path):
    with pytest.raises(BcistreamError, match="no study 'nope'"):
        best_params("nope", f"sqlite:///{tmp_path / 'o.db'}")


def test_train_from_missing_study_is_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    code = main(["train", "--data", str(tmp_path), "--from-study", "nope", "--no-promote"])
    assert code == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_wandb_sweeps_need_online(tmp_path):
    # The sweep path itself needs the W&B server (API key + network) and cannot run here; offline it
    # must refuse clearly instead of pretending.
    with pytest.raises(BcistreamError, match="W&B sweeps need W&B online"):
        tune_wandb(None, n_trials=1, project="p", mode="offline")
    cfg = wandb_sweep_config(n_channels=8, folds=3)
    assert cfg["parameters"]["n_components"]["max"] == 8
    assert cfg["parameters"]["decoder"] == {"value": "csp-svm"}
    assert cfg["metric"] == {"name": "cv_mean", "goal": "maximize"}


def test_tune_rejects_unknown_engine(small_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    assert main(["tune", "--data", str(small_data), "--engine", "grid", "--trials", "1"]) == 2
    assert "--engine: must be" in capsys.readouterr().err


def test_tune_next_command_repeats_every_data_and_profile_option(tmp_path, monkeypatch, capsys):
    """`tune`'s printed next: line keeps --train, --test, --profile, --set, --allow-warnings…"""
    import shlex

    from tests.own_data import RIG_PROFILE, write_runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    (tmp_path / "rig.toml").write_text(RIG_PROFILE)
    write_runs(tmp_path / "rig")
    given = ["--train", "rig/S001R0[12].edf", "--test", "rig/S001R0[34].edf", "--profile", "rig.toml",
             "--set", "decoder=csp-lda", "--allow-warnings"]
    assert main(["tune", *given, "--trials", "1", "--folds", "3", "--no-track"]) == 0
    out = capsys.readouterr().out
    nxt = shlex.split(next(ln for ln in out.splitlines() if ln.startswith("next: ")).removeprefix("next: "))
    pairs = {(a, b) for a, b in zip(nxt, nxt[1:], strict=False)}
    for flag, value in zip(given[::2], given[1::2], strict=False):
        if flag != "--allow-warnings":
            assert (flag, value) in pairs, (flag, nxt)
    assert "--allow-warnings" in nxt and "--from-study" in nxt and nxt[:2] == ["bcistream", "train"]
    # ... and it runs: train evaluates on the --test files and gates (no "not promoted" for lack of E).
    assert main([*nxt[1:]]) in (0, 1)
    out = capsys.readouterr().out
    assert "no labelled test session" not in out and "T→E" in out
    # Without test data, train says so in the layout's own words (not 2a's "E session").
    assert main(["train", "--train", "rig/S001R0[12].edf", "--profile", "rig.toml",
                 "--set", "decoder=csp-lda", "--folds", "3"]) == 0
    out = capsys.readouterr().out
    assert "no labelled test session (--test), not promoted" in out and "E session" not in out
