"""Ports and metrics of servers the CLI starts: a busy port is one line up front, two `serve`
processes in one BCISTREAM_HOME keep separate Prometheus multiprocess folders."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from bcistream.cli import main


@pytest.fixture
def busy_port():
    """A port of 127.0.0.1 another process listens on (held for the test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_serve_on_a_busy_port_is_one_line_before_anything_starts(busy_port, capsys, monkeypatch):
    import subprocess

    def no_server(*args, **kwargs):
        raise AssertionError("bentoml serve was started")

    monkeypatch.setattr(subprocess, "Popen", no_server)
    assert main(["serve", "--port", str(busy_port)]) == 2
    assert _one_error_line(capsys) == (f"error: port {busy_port} on 127.0.0.1 is already in use "
                                       "(another bcistream serve?): choose another --port")


def test_run_with_a_busy_metrics_port_is_refused_before_resolving_streams(busy_port, capsys):
    code = main(["run", "--from", "lsl:no-such-stream", "--model", "models:/m@champion", "--to", "stdout",
                 "--metrics-port", str(busy_port), "--resolve-timeout", "0.2", "--no-view"])
    assert code == 2
    assert f"--metrics-port {busy_port}: port in use" in _one_error_line(capsys)


def test_retrain_with_a_busy_metrics_port_is_refused(busy_port, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    assert main(["retrain", "--metrics-port", str(busy_port)]) == 2
    assert f"--metrics-port {busy_port}: port in use" in _one_error_line(capsys)


def test_port_in_use_only_for_a_listening_port(busy_port):
    from bcistream.cli.common import port_in_use
    from tests.helpers import free_port

    assert port_in_use("127.0.0.1", busy_port) and port_in_use("localhost", busy_port)
    assert not port_in_use("127.0.0.1", free_port()) and not port_in_use("127.0.0.1", 0)


def test_each_serve_gets_its_own_bentoml_home_and_metrics_folder(monkeypatch, tmp_path):
    """BentoML keeps multiprocess metrics in $BENTOML_HOME/prometheus_multiproc_dir and empties it
    when a server starts: a shared home lets a second server wipe the first one's /metrics."""
    import shutil

    from bcistream.cli.serve_cmds import serve_env

    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "shared-bentoml"))
    first, second = serve_env(None, None), serve_env(None, None)
    try:
        homes = {first["BENTOML_HOME"], second["BENTOML_HOME"]}
        assert len(homes) == 2 and str(tmp_path / "shared-bentoml") not in homes
        assert all(Path(h).is_dir() and not any(Path(h).iterdir()) for h in homes)
    finally:
        for env in (first, second):
            shutil.rmtree(env["BENTOML_HOME"], ignore_errors=True)


def test_serve_removes_its_bentoml_home_at_exit(monkeypatch, tmp_path):
    from bcistream.cli import serve_cmds

    seen = []
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    monkeypatch.setattr(serve_cmds, "_run_server", lambda env, *a: seen.append(
        (env["BENTOML_HOME"], Path(env["BENTOML_HOME"]).is_dir())))
    monkeypatch.setattr(serve_cmds, "default_champion", lambda *a: None)
    from tests.helpers import free_port

    assert main(["serve", "--port", str(free_port())]) == 0
    (home, existed), = seen
    assert existed and not Path(home).exists()


@pytest.mark.slow
def test_a_second_serve_leaves_the_first_ones_metrics(tmp_path):
    from tests.serving_support import MODEL_NAME, Server, make_registry

    reg = make_registry(tmp_path / "reg", n_versions=1)
    env = {"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
           "BCISTREAM_TRACKING_URI": reg.tracking_uri,
           "BCISTREAM_HOME": str(tmp_path / "home"), "BCISTREAM_POLL_S": "0"}
    first = Server(env, cwd=tmp_path)
    try:
        for _ in range(3):
            httpx.get(f"{first.url}/model", timeout=10).raise_for_status()
        assert _model_requests(first.url) == 3
        second = Server(env, cwd=tmp_path)
        try:
            assert _model_requests(first.url) == 3  # was 0: the second server emptied the folder
        finally:
            second.stop()
    finally:
        first.stop()


def _model_requests(url: str) -> float:
    """``GET /model`` requests counted by BentoML in ``url``'s /metrics."""
    import re

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(
        r'^bentoml_service_request_total\{[^}]*endpoint="/model"[^}]*\} (\S+)$', text, re.M))
