"""Experiment tracking around a training run: the MLflow experiment and the W&B run.

W&B is offline by default (runs land in the run folder and can be synced later with
``wandb sync``); it goes online when ``WANDB_API_KEY`` is set, unless the mode is ``disabled``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["WandbRun", "artifact_location", "ensure_experiment", "wandb_mode"]

log = logging.getLogger(__name__)


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a sqlite registry (``<db folder>/mlartifacts``), else the server's default.

    Without this MLflow writes artifacts to ``./mlruns`` of whatever folder the command runs in.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(tracking_uri: str, name: str, artifacts: str | None = None) -> str:
    """The id of experiment ``name``, created (with its artifact location) when missing."""
    from bcistream.training.registry import client

    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return c.create_experiment(name, artifact_location=artifacts or artifact_location(tracking_uri))


def wandb_mode(configured: str, env: dict[str, str] | None = None) -> str:
    """The W&B mode in force: ``disabled`` stays off; an API key turns ``offline`` into ``online``."""
    env = dict(os.environ) if env is None else env
    mode = configured.lower()
    if mode not in ("offline", "online", "disabled"):
        from bcistream.errors import BcistreamError

        raise BcistreamError(f"wandb mode must be offline, online or disabled, got '{configured}'")
    if mode == "offline" and env.get("WANDB_API_KEY"):
        return "online"
    return mode


class WandbRun:
    """One W&B run (or nothing when disabled); failures are logged, never fatal to training.

    Parameters
    ----------
    mode : str
        ``offline``, ``online`` or ``disabled`` (see `wandb_mode`).
    folder : Path
        Run folder; W&B writes ``<folder>/wandb/<offline-run-...>``.
    name, project : str
    config : dict
        Run configuration (pipeline parameters, subjects, data digest).
    verbose : bool, optional
        Let W&B print to the console (default: only when ``BCISTREAM_WANDB_VERBOSE=1``).
    """

    def __init__(self, mode: str, folder: Path, name: str, project: str, config: dict[str, Any],
                 verbose: bool | None = None) -> None:
        self.run = None
        self.mode = mode
        if mode == "disabled":
            return
        if verbose is None:
            verbose = os.environ.get("BCISTREAM_WANDB_VERBOSE", "").lower() in ("1", "true", "yes")
        try:
            import wandb

            folder.mkdir(parents=True, exist_ok=True)
            # W&B prints ~25 lines per run (banner, sync hints, run summary, history sparklines);
            # training prints its own summary, so W&B stays silent unless asked.
            quiet = {} if verbose else {"settings": wandb.Settings(silent=True, quiet=True, show_info=False,
                                                                   show_warnings=False, console="off")}
            self.run = wandb.init(project=project, name=name, dir=str(folder), mode=mode,
                                  config=config, reinit="create_new", **quiet)
        except Exception as exc:  # noqa: BLE001  (tracking must not break training)
            log.warning("W&B run not started (%s: %s)", type(exc).__name__, exc)

    @property
    def dir(self) -> Path | None:
        """The run's own folder (``.../wandb/offline-run-*``)."""
        return Path(self.run.dir).parent if self.run is not None else None

    def log(self, metrics: dict[str, float], images: dict[str, Path] | None = None) -> None:
        """Log metrics (and PNG images) in one step; also keep them in the run summary."""
        if self.run is None:
            return
        try:
            import wandb

            payload: dict[str, Any] = dict(metrics)
            for key, path in (images or {}).items():
                payload[key] = wandb.Image(str(path))
            self.run.log(payload)
            for key, value in metrics.items():
                self.run.summary[key] = value
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B logging failed (%s: %s)", type(exc).__name__, exc)

    def finish(self) -> None:
        """Close the run (flushes the offline run file)."""
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as exc:  # noqa: BLE001
                log.warning("W&B finish failed (%s: %s)", type(exc).__name__, exc)
