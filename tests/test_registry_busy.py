"""A locked registry (another process holds the sqlite write lock): bounded retry, then one line, rc 2."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from bcistream.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path, monkeypatch):
    from bcistream.training.registry import client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client(uri).search_registered_models()  # creates the tables
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", uri)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    return tmp_path / "mlflow.db", uri


def _lock(path):
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_locked_registry_is_one_error_line_with_rc_2(registry, monkeypatch, capsys):
    path, uri = registry
    monkeypatch.setenv("BCISTREAM_REGISTRY_WAIT_S", "0")
    conn = _lock(path)
    try:
        for argv in (["models"], ["run", "--from", "lsl:amp1", "--model", "models:/bcistream-A01@champion"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
            assert "locked" in err and "internal error" not in err and "SELECT" not in err, err
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_a_lock_released_within_the_wait_is_retried(registry):
    from bcistream.training.registry import client

    path, uri = registry
    conn = _lock(path)
    first_attempt_failed = threading.Event()

    def release() -> None:
        # Hold the lock until the first attempt has surely hit it (sqlite waits ~5 s), then let go.
        first_attempt_failed.wait(60)
        conn.execute("ROLLBACK")
        conn.close()

    import logging

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "busy" in record.getMessage():
                first_attempt_failed.set()

    handler = Seen()
    logging.getLogger("bcistream.training.registry").addHandler(handler)
    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        c = client(uri, wait_s=120)
        assert c.search_registered_models() == []
        assert first_attempt_failed.is_set()  # it really was locked, and the retry got through
    finally:
        logging.getLogger("bcistream.training.registry").removeHandler(handler)
        first_attempt_failed.set()
        releaser.join(60)
