"""Service settings, read from the environment once when the service starts (env prefix ``BCISTREAM_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServingConfig"]


class ServingConfig(BaseSettings):
    """Settings of the BentoML service; every field can be set with ``BCISTREAM_<FIELD>``.

    Attributes
    ----------
    model_uri : str or None
        ``models:/NAME@ALIAS`` (followed) or ``models:/NAME/VERSION``; default
        ``models:/<model_name>@champion``.
    tracking_uri : str or None
        MLflow tracking/registry URI (default: the sqlite file of `bcistream.settings.Settings`).
    poll_s : float
        Seconds between checks of the alias (0 disables polling).
    api_token : str or None
        When set, every request except /livez, /readyz and /metrics needs
        ``Authorization: Bearer <token>``.
    max_body_mb : float
        Largest accepted request body (.npy and file uploads); larger ones get 413.
    max_json_mb : float
        Largest JSON body (/classify, /classify_features). Parsing JSON numbers costs ~30-60
        bytes of memory per byte of text at worst, so this stays small; large batches go as
        .npy to /raw/classify_npy (binary, parsed in place).
    serve_workers : int
        BentoML worker processes (each holds its own copy of the model).
    access_log : bool
        BentoML's per-request access log; off by default: it cost ~3 ms per request on a busy
        2-core machine, and /metrics counts requests per endpoint and status anyway.
    """

    model_config = SettingsConfigDict(env_prefix="BCISTREAM_", extra="ignore")

    model_uri: str | None = None
    tracking_uri: str | None = None
    model_name: str = "bcistream"
    poll_s: float = Field(default=10.0, ge=0)
    api_token: str | None = None
    max_body_mb: float = Field(default=256.0, gt=0)
    max_json_mb: float = Field(default=16.0, gt=0)
    serve_workers: int = Field(default=1, ge=1)
    access_log: bool = False

    def resolved_model_uri(self) -> str:
        """The model URI in force."""
        return self.model_uri or f"models:/{self.model_name}@champion"

    def resolved_tracking_uri(self) -> str:
        """The tracking URI in force (the project default when unset)."""
        if self.tracking_uri:
            return self.tracking_uri
        from bcistream.settings import Settings

        return Settings().mlflow_uri

    @property
    def max_body_bytes(self) -> int:
        """``max_body_mb`` in bytes."""
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_json_bytes(self) -> int:
        """``max_json_mb`` in bytes (never more than the body limit)."""
        return min(int(self.max_json_mb * 1024 * 1024), self.max_body_bytes)
