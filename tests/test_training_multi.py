"""Several subjects: per-subject models (in worker processes) and one pooled model, via the CLI."""

from __future__ import annotations

import pytest

from bcistream.cli import main
from bcistream.training.registry import alias_version, client, model_versions

pytestmark = pytest.mark.slow


def test_per_subject_and_pooled_models(tmp_path, monkeypatch, capsys):
    from bcistream.data.synth import make_small_dataset

    data = tmp_path / "data"
    make_small_dataset(data, subjects=2, seed=2, n_trials_per_class=8)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")

    assert main(["train", "--data", str(data), "--subject", "all", "--jobs", "2", "--folds", "3",
                 "--min-trials", "10", "--set", "n_components=4"]) == 0
    out = capsys.readouterr().out
    # One registered model per subject, each its own first champion.
    for label in ("A01", "A02"):
        assert alias_version(uri, f"bcistream-{label}", "champion") == "1"
        tags = model_versions(uri, f"bcistream-{label}")[0]["tags"]
        assert tags["subjects"] == label[-1] and tags["promotion.decision"] == "promoted"
    assert "bcistream-A01 v1: promoted" in out
    # Their runs are nested under one parent run of the call.
    c = client(uri)
    runs = c.search_runs([c.get_experiment_by_name("bcistream").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert sorted(r.info.run_name for r in children) == ["A01", "A02"]
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    assert all(r.data.params["n_components"] == "4" for r in children)

    assert main(["train", "--data", str(data), "--subject", "1,2", "--pooled", "--no-promote",
                 "--folds", "3"]) == 0
    assert model_versions(uri, "bcistream") == []  # one naming rule: BASE-LABEL, never bare BASE
    rows = model_versions(uri, "bcistream-pooled")
    assert len(rows) == 1 and rows[0]["aliases"] == ["challenger"]
    assert rows[0]["tags"]["subjects"] == "1,2"
    run = c.get_run(rows[0]["run_id"])
    # Pooled: both subjects' T trials for training, both E sessions for the score.
    assert run.data.metrics["n_train"] >= 60 and run.data.metrics["n_test"] >= 60
    assert alias_version(uri, "bcistream-pooled", "champion") is None  # --no-promote
