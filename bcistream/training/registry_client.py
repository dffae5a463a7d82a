"""Reaching the registry: the tracking URI of a block, and an MLflow client patient with a busy database.

Every registry call in the project goes through `client`, so a locked sqlite file or a server that
does not answer yet is retried in one place, for one configurable time (`set_registry_wait`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from bcistream.training.registry_errors import RegistryBusyError, is_busy_error

__all__ = ["client", "set_registry_wait", "tracking"]

# The name the registry's log records have always had (bcistream.training.registry): logging
# configurations and tests that listen for "registry ... is busy" keep working.
log = logging.getLogger("bcistream.training.registry")

# Set here, the module every registry call imports, so they hold before MLflow is first imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Artifact downloads are local copies of a few small files; their progress bars are noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def tracking(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (runs, log_model) at ``tracking_uri`` for the block, then restore.

    Only the tracking URI is touched: registry calls go through an explicit `client`, so no
    process-wide registry URI is left behind for the next caller.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as _tracking_utils

    before = getattr(_tracking_utils, "_tracking_uri", None)
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None also clears the env var MLflow set
        if env_before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


#: Seconds `client` keeps retrying a locked or busy registry (`set_registry_wait`); ``None``: the
#: settings' ``registry_wait_s`` (``BCISTREAM_REGISTRY_WAIT_S``, 30 s).
_REGISTRY_WAIT_S: float | None = None


def set_registry_wait(seconds: float) -> None:
    """How long `client` retries a locked or busy registry before `RegistryBusyError` (>= 0)."""
    global _REGISTRY_WAIT_S
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    _REGISTRY_WAIT_S = float(seconds)


def client(tracking_uri: str, *, wait_s: float | None = None) -> Any:
    """An `mlflow.MlflowClient` on ``tracking_uri`` (also the registry), patient with a busy database.

    While another process holds the sqlite file's write lock, opening the client and every call
    fail with ``database is locked`` (after sqlite's own ~5 s busy wait). Each is retried with
    backoff for ``wait_s`` seconds (default: `set_registry_wait`, else the settings'
    ``registry_wait_s``, 30 s); a failed sqlite statement wrote nothing, so retrying is safe.

    Raises
    ------
    RegistryBusyError
        The registry stayed locked or unreachable for ``wait_s`` seconds.
    """
    from mlflow import MlflowClient

    if wait_s is not None:
        budget = wait_s
    elif _REGISTRY_WAIT_S is not None:
        budget = _REGISTRY_WAIT_S
    else:
        from bcistream.settings import Settings

        budget = Settings().registry_wait_s
    inner = _retry(lambda: MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri),
                   tracking_uri, budget)
    return _PatientClient(inner, tracking_uri, budget)


def _retry(call: Any, tracking_uri: str, budget: float) -> Any:
    import time

    deadline = time.monotonic() + budget
    pause = 0.2
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_busy_error(exc):
                raise
            if time.monotonic() + pause > deadline:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RegistryBusyError(
                    f"the registry {tracking_uri} stayed locked or busy for {budget:g} s ({first[:160]}); "
                    "another process is writing to it — try again when it is done") from None
            log.warning("registry %s is busy (%s); retrying", tracking_uri, type(exc).__name__)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class _PatientClient:
    """Forwards to an `mlflow.MlflowClient`, retrying calls that meet a busy database (`client`)."""

    def __init__(self, inner: Any, tracking_uri: str, budget: float) -> None:
        self._inner, self._uri, self._budget = inner, tracking_uri, budget

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return _retry(lambda: attr(*args, **kwargs), self._uri, self._budget)

        return call
