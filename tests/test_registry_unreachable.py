"""An HTTP registry that is down: one line that says so, within the registry wait, no retry spam.

MLflow on its own retries an unreachable server 7 times with backoff 2 (~4 minutes, one urllib3
WARNING each) and `load_model` then said "model 'x' has no alias 'champion'" — wrong: nothing was
read. Real HTTP: a free loopback port with nothing listening.
"""

from __future__ import annotations

import os

import pytest

from bcistream.cli import main
from bcistream.streamer.local_broker import free_port


@pytest.fixture
def down(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    monkeypatch.setenv("BCISTREAM_REGISTRY_WAIT_S", "2")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    return uri


@pytest.mark.parametrize("argv", [
    ["run", "--from", "lsl:amp1", "--model", "models:/x@champion"],
    ["run", "--from", "lsl:amp1", "--model", "models:/x/3"],
])
def test_unreachable_registry_is_one_line_naming_the_failure(down, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    what = "alias 'champion'" if "@" in argv[-1] else "version 3"
    assert err == (f"error: {argv[-1]}: cannot read {what} of model 'x' from {down}: connection refused "
                   "(is the MLflow server up?)\n")
    # main bounds MLflow's HTTP retries only while the command runs
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_registry_wait_bounds_mlflow_http_retries(monkeypatch):
    from bcistream.cli import _bounded_registry_retries

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    for wait, retries in (("30", "4"), ("2", "1"), ("0", "0")):  # sleeps 2+4+8+16 = 30 s
        monkeypatch.setenv("BCISTREAM_REGISTRY_WAIT_S", wait)
        with _bounded_registry_retries():
            assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == retries
            assert int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) >= 5
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")  # the user's own setting wins
    with _bounded_registry_retries():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"


def test_models_command_says_the_registry_is_down(down, capsys):
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {down}: cannot list versions of '"), err
    assert err.endswith("': connection refused (is the MLflow server up?)\n"), err


def test_serve_warns_the_registry_is_down_in_one_short_line(down, monkeypatch):
    from bcistream.cli.serve_cmds import describe_model

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # describe_model runs outside main here
    found, line = describe_model("models:/x@champion", down)
    assert not found
    assert line == (f"cannot read models:/x@champion: {down}: cannot read alias 'champion' of 'x': "
                    "connection refused (is the MLflow server up?); the service starts, answers 503 "
                    "and keeps polling the registry")
