"""The one typed settings object, read once at the edge (the CLI) and passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """bcistream settings; every field can be set with an env var ``BCISTREAM_<FIELD>``.

    Attributes
    ----------
    home : Path
        Working folder for data, runs and the registry.
    profile : str
        Default dataset profile (built-in name or TOML path).
    log_level : str
        Logging level of the CLI.
    """

    model_config = SettingsConfigDict(env_prefix="BCISTREAM_", extra="ignore")

    home: Path = Field(default=Path("bcistream-data"))
    profile: str = "bci-iv-2a"
    log_level: str = "WARNING"
    #: MLflow tracking/registry URI; default: a sqlite file in ``home``.
    tracking_uri: str | None = None
    #: Registered model name in the MLflow registry.
    model_name: str = "bcistream"
    #: W&B mode: offline (default, synced later with ``wandb sync``), online, or disabled.
    wandb_mode: str = "offline"
    #: Kafka bootstrap servers.
    kafka_bootstrap: str = "127.0.0.1:9092"
    #: Store of recorded trials: a folder or ``gs://bucket/prefix``; default ``home/recordings``.
    store: str | None = None
    #: Seconds a command retries a locked or busy registry database before giving up (one line, rc 2).
    registry_wait_s: float = Field(default=30.0, ge=0)
    #: URL of the bcistream service (``classify --url``, the default of clients).
    service_url: str = "http://127.0.0.1:3000"
    #: MLflow artifact root of new experiments (folder or gs://bucket/prefix); default beside the sqlite db.
    mlflow_artifacts: str | None = None

    @property
    def data_dir(self) -> Path:
        """Where synthetic and downloaded recordings go."""
        return self.home / "data"

    @property
    def mlflow_uri(self) -> str:
        """The tracking URI in force."""
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def store_url(self) -> str:
        """The recorded-trials store in force."""
        return self.store or str(self.home / "recordings")

    @property
    def runs_dir(self) -> Path:
        """Where run reports go."""
        return self.home / "runs"
