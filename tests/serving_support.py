"""Helpers of the serving tests and benchmark: a registry with real models, a real `bentoml serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import free_port, wait_until

MODEL_NAME = "bcistream-test"


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group (workers included); SIGKILL what is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class Registry:
    """An MLflow sqlite registry holding fitted pipelines of the small synthetic dataset."""

    tracking_uri: str
    data_dir: Path
    versions: dict[str, object]  # version -> fitted pipeline

    @property
    def files(self) -> dict[str, Path]:
        return {"T": self.data_dir / "A01T_raw.fif", "E": self.data_dir / "A01E_raw.fif",
                "labels": self.data_dir / "A01E.mat"}


def fit_pipeline(data_dir: Path, **params):
    """Fit a decoder's pipeline (``decoder=`` key, default csp-svm) on session T of the synthetic subject."""
    from bcistream.data.loader import load_recording
    from bcistream.decoders import build_pipeline
    from bcistream.pipeline import epochs_from_recording, fit_filtered

    rec = load_recording(data_dir / "A01T_raw.fif")
    pipe = build_pipeline(rec.profile, params)
    return fit_filtered(pipe, epochs_from_recording(pipe, rec))


def register(tracking_uri: str, pipe, alias: str | None = "champion", name: str = MODEL_NAME) -> str:
    """Register ``pipe`` as a new version (through training's registry code) and point ``alias``."""
    from bcistream.training.registry import client, register_model
    from bcistream.training.tracking import ensure_experiment

    c = client(tracking_uri)
    # Artifacts beside the sqlite file (not in ./mlruns of whatever folder the tests run in).
    run = c.create_run(ensure_experiment(tracking_uri, "serving-tests"))
    c.log_metric(run.info.run_id, "accuracy", 0.5)
    version = register_model(pipe, tracking_uri=tracking_uri, name=name, run_id=run.info.run_id,
                             alias=alias)
    c.set_terminated(run.info.run_id)
    return version


def make_registry(folder: Path, n_versions: int = 2, tracking_uri: str | None = None,
                  data_dir: Path | None = None, n_trials_per_class: int = 12,
                  decoder: str = "csp-svm") -> Registry:
    """Synthetic data, and ``n_versions`` differently fitted models; the first is the champion."""
    from bcistream.data.synth import make_small_dataset

    if data_dir is None:
        data_dir = folder / "data"
        make_small_dataset(data_dir, subjects=1, seed=0, n_trials_per_class=n_trials_per_class)
    tracking_uri = tracking_uri or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    versions = {}
    for i in range(n_versions):
        pipe = fit_pipeline(data_dir, decoder=decoder, C=[1.0, 0.05, 10.0][i % 3])
        v = register(tracking_uri, pipe, alias="champion" if i == 0 else None)
        versions[v] = pipe
    return Registry(tracking_uri=tracking_uri, data_dir=data_dir, versions=versions)


class Server:
    """A `bentoml serve` subprocess of the bcistream service on 127.0.0.1 and a free port."""

    def __init__(self, env: dict[str, str], cwd: Path, timeout: float = 60.0,
                 cpus: set[int] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "BENTOML_DO_NOT_TRACK": "true"}
        self.log = open(cwd / f"bentoml-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from bcistream.cli import console_main; console_main()", "serve",
             "--port", str(self.port),
             "--host", "127.0.0.1"],
            env=full, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        try:
            wait_until(self._ready, timeout=timeout, interval=0.1, what=f"bentoml serve on {self.url}")
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"bentoml serve did not get ready; log:\n{self.log_text()[-3000:]}") from None

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {self.proc.returncode}:\n"
                               f"{self.log_text()[-3000:]}")
        return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        _stop_group(self.proc)
        self.log.close()


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend and proxied artifacts (a networked registry)."""

    def __init__(self, folder: Path, port: int | None = None, timeout: float = 90.0) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / f"mlflow-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{(folder / 'mlflow.db').resolve()}", "--artifacts-destination",
             str((folder / "artifacts").resolve()), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(self._healthy, timeout=timeout, interval=0.2, what=f"mlflow server on {self.url}")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {self.proc.returncode}")
        return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200

    def stop(self) -> None:
        _stop_group(self.proc)
        self.log.close()
