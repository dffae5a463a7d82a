"""Model names in messages and tables: an unknown name says so and lists the names that exist;
`models` never cuts an alias; `train` prints what each version is after the gate."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import bcistream as bs
from bcistream.cli import main
from bcistream.training.registry import ModelError, client, load_model, missing_model
from tests.serving_support import register

LONG_ALIASES = ["champion", "challenger", "canary-for-the-lab-upstairs", "rollback-before-2024-upgrade"]


def _small_pipeline():
    """A 3-channel, 2-class CSP+SVM pipeline fitted on noise: enough to register versions."""
    pipe = bs.make_pipeline(sfreq=250.0, ch_names=["C3", "Cz", "C4"], classes=["left", "right"],
                            n_components=2)
    rng = np.random.default_rng(0)
    pipe.fit(rng.normal(size=(16, 3, 750)) * 1e-5, np.array(["left", "right"] * 8))
    return pipe


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One small sqlite registry: 'bcistream-A01' v1 with several long aliases."""
    folder = tmp_path_factory.mktemp("names")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    pipe = _small_pipeline()
    version = register(uri, pipe, alias="champion", name="bcistream-A01")
    for alias in LONG_ALIASES[1:]:
        client(uri).set_registered_model_alias("bcistream-A01", alias, version)
    return uri


def test_unknown_name_says_no_such_model_and_lists_the_names(registry):
    line = missing_model(registry, "nope", alias="champion")
    assert line.startswith(f"no registered model named 'nope' in {registry} "
                           "(registered models: bcistream-A01 (")
    assert "has no alias" not in line and "\n" not in line
    with pytest.raises(ModelError, match=re.escape("models:/nope@champion: no registered model named 'nope'")
                       ):
        load_model("models:/nope@champion", registry)
    with pytest.raises(ModelError, match="no registered model named 'nope'.*bcistream-A01"):
        load_model("models:/nope/1", registry)


def test_known_name_without_the_alias_or_version_lists_what_it_has(registry):
    line = missing_model(registry, "bcistream-A01", alias="staging")
    assert line == (f"model 'bcistream-A01' has no alias 'staging' in {registry} "
                    f"(its aliases: {', '.join(sorted(LONG_ALIASES))})")
    with pytest.raises(ModelError, match="model 'bcistream-A01' has no version 7 .*its versions: 1"):
        load_model("models:/bcistream-A01/7", registry)


def test_run_and_serve_say_the_same(registry, monkeypatch, capsys):
    from bcistream.cli.serve_cmds import describe_model

    found, line = describe_model("models:/nope@champion", registry)
    assert not found and line.startswith("NO MODEL: no registered model named 'nope'")
    assert "bcistream-A01" in line and line.endswith("or pass --model models:/NAME@ALIAS")
    # The user named the model (serve --model … --wait-for-model): no hint to pass one.
    assert "pass --model" not in describe_model("models:/nope@champion", registry, given=True)[1]
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", registry)
    assert main(["run", "--from", "lsl:amp1", "--model", "models:/nope@champion"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: models:/nope@champion: no registered model named 'nope'")
    assert "bcistream-A01" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("model", "says"), [
    ("models:/nope@champion", "no registered model named 'nope'"),
    ("models:/bcistream-A01/7", "model 'bcistream-A01' has no version 7"),
])
def test_serve_refuses_a_model_the_registry_never_had(registry, monkeypatch, capsys, model, says):
    """A typo in --model is exit 2 with one line, not a service answering 503 forever."""
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", registry)
    assert main(["serve", "--model", model, "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {model}: {says}"), err
    assert "--wait-for-model" in err and len(err.strip().splitlines()) == 1


def test_serve_waits_for_an_alias_of_a_known_model(registry):
    """A registered model without the alias yet is a wait (a promotion may come), not an error."""
    from bcistream.cli.serve_cmds import refuse_unknown_model

    refuse_unknown_model("models:/bcistream-A01@staging", registry)  # no exception
    refuse_unknown_model("models:/bcistream-A01/1", registry)
    with pytest.raises(bs.BcistreamError, match="no registered model named 'nope'"):
        refuse_unknown_model("models:/nope@champion", registry)

def test_serve_does_not_refuse_what_an_unreadable_registry_cannot_tell(tmp_path):
    """An unreadable registry is not a typo: the service starts, warns and keeps retrying."""
    from bcistream.cli.serve_cmds import refuse_unknown_model

    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not a database" * 100)
    refuse_unknown_model("models:/nope@champion", f"sqlite:///{broken}")  # no exception


def test_models_table_never_cuts_an_alias(registry, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", registry)
    monkeypatch.setenv("COLUMNS", "80")  # narrower than the aliases: they must fold, not be cut
    assert main(["models", "--name", "bcistream-A01"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    # The aliases column, every line of the row: rejoined, it holds every alias in full.
    cell = "".join(m.group(1).strip() for m in re.finditer(r"^│[^│]*│([^│]*)│", out, re.M))
    assert cell.split(",") == sorted(LONG_ALIASES), out


VERDICTS = {"1": ("promoted", "no champion yet: first model that passes the checks (accuracy 0.871 on "
                             "31 trials)"),
            "2": ("refused", "not better by the margin: accuracy 0.871 vs champion v1 0.871 on the same "
                            "31 trials (delta +0.000, margin 0.020)")}


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """'bcistream-demo-A01': v1 champion (promoted), v2 challenger (refused), as `train` tags them."""
    folder = tmp_path_factory.mktemp("gated")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    pipe = _small_pipeline()
    for version, alias in (("1", "champion"), ("2", "challenger")):
        assert register(uri, pipe, alias=alias, name="bcistream-demo-A01") == version
        decision, verdict = VERDICTS[version]
        for key, value in {"metric.accuracy": "0.8710", "metric.kappa": "0.8275", "metric.cv_mean": "0.7125",
                           "promotion.decision": decision, "promotion.verdict": verdict}.items():
            client(uri).set_model_version_tag("bcistream-demo-A01", version, key, value)
    return uri


def test_models_table_keeps_identifiers_whole_at_80_columns(gated, monkeypatch, capsys):
    """At 80 columns rich split 'challeng' / 'er', '2026-11' / '-30' and the reasons mid-word."""
    from bcistream.training.registry import model_versions

    monkeypatch.setenv("BCISTREAM_TRACKING_URI", gated)
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["models", "--name", "bcistream-demo"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    words = set(re.sub(r"[│┃]", " ", out).split())
    rows = model_versions(gated, "bcistream-demo-A01")
    whole = {"champion", "challenger", "promoted", "refused", "0.8710", "0.8275", "0.7125"}
    whole |= {word for row in rows for word in row["created"].split()}
    whole |= {word for _, verdict in VERDICTS.values() for word in verdict.split()}
    assert whole <= words, (sorted(whole - words), out)
    assert "…" not in out


def test_training_table_keeps_the_model_name_whole_at_80_columns():
    """`train`'s table cut the name it registered: 'bcistream-de…'."""
    from pathlib import Path
    from types import SimpleNamespace

    from rich.console import Console

    from bcistream.cli.tables import print_table
    from bcistream.cli.train_cmds import training_table

    result = SimpleNamespace(accuracy=0.871, kappa=0.828, cv_mean=0.713, cv_std=0.088, n_train=31, n_test=31)
    model = SimpleNamespace(label="A01", name="bcistream-demo-A01", version="3", result=result, seconds=1.9)
    outcome = SimpleNamespace(folder=Path("20261130-102314-A01"), models=[model])
    console = Console(width=80, file=io.StringIO())
    print_table(console, training_table(outcome, {("bcistream-demo-A01", "3"): "challenger (not promoted)"}))
    out = console.file.getvalue()
    assert max(len(line) for line in out.splitlines()) <= 80, out
    words = set(re.sub(r"[│┃]", " ", out).split())
    assert {"bcistream-demo-A01", "challenger", "(not", "promoted)", "0.713", "0.088", "31/31"} <= words, out


def test_train_prints_what_each_version_is_after_the_gate(tmp_path, monkeypatch, capsys):
    from bcistream.data.synth import make_small_dataset

    make_small_dataset(tmp_path / "data", subjects=1, seed=4, n_trials_per_class=8)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    monkeypatch.setenv("COLUMNS", "200")
    train = ["train", "--data", str(tmp_path / "data"), "--subject", "1", "--folds", "2", "--min-trials", "1"]
    assert main(train) == 0
    out = capsys.readouterr().out
    # The first version meets no champion: it is promoted, and every line says so.
    assert "promoted to champion" in out, out
    assert "(challenger)" not in out and "challenger (not promoted)" not in out, out
    assert "bcistream-A01 v1 champion (promoted)" in out and "registered bcistream-A01 v1: champion" in out
    # --no-promote leaves a challenger, and says why.
    assert main([*train, "--no-promote"]) == 0
    out = capsys.readouterr().out
    assert "bcistream-A01 v2 challenger (--no-promote)" in out and "champion" not in out.split("report:")[0]


def test_models_of_an_unknown_name_lists_the_names(registry, monkeypatch, capsys):
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", registry)
    assert main(["models", "--name", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no registered model named 'nope' or 'nope-LABEL'")
    assert "bcistream-A01 (" in err
