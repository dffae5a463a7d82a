"""`LiveConfig`: everything a live run needs, in one typed object (what ``bcistream run`` builds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from bcistream.errors import ConfigError

__all__ = ["LiveConfig", "TRIGGERS"]

#: ``trigger`` → the engine's triggers.
TRIGGERS: dict[str, tuple[str, ...]] = {"hop": ("hop",), "cue": ("cue",), "both": ("hop", "cue")}


class LiveConfig(BaseModel):
    """A live run: source → engine → sinks, with metrics, recording and hot swaps.

    Every field is also an option of ``bcistream run`` (``hop_s`` is ``--hop``, ``sinks`` is
    ``--to``, ``source`` is ``--from``, ``kafka_config`` is ``--kafka-opt``).

    Attributes
    ----------
    source : str
        ``lsl:NAME[,NAME...]`` or ``kafka:TOPIC`` (ignored when `LiveSystem` gets a source object).
    model : str
        ``models:/NAME@ALIAS``, ``models:/NAME/N`` or a saved model folder (ignored when
        `LiveSystem` gets a fitted pipeline).
    sinks : list of str
        ``stdout``, ``jsonl:PATH``, ``lsl:NAME``, ``lsl-proba:NAME``, ``lsl-labels:NAME``,
        ``kafka:TOPIC``.
    trigger : {"hop", "cue", "both"}
        Sliding-window decisions, cue-locked ones, or both.
    hop_s : float
        Seconds between sliding-window decisions (> 0).
    classifier : str
        ``"local"`` (in-process) or the http(s) URL of the bcistream service.
    metrics_port : int or None
        Serve Prometheus ``/metrics`` on this port (0: a free port, see `LiveSystem.metrics_url`).
    max_decisions, duration, idle_exit : optional
        Stop after this many decisions / seconds / seconds without new samples (once data came).
        The decisions of the poll that reaches ``max_decisions`` are all published (a batch is
        never cut), so a run may end a little past it.
    tracking_uri : str or None
        MLflow tracking URI (default: `bcistream.settings.Settings.mlflow_uri`).
    record, record_store, record_preroll
        Record labelled trials into a store (folder or ``gs://``), with this raw pre-roll (s).
    poll_interval : float or None
        Hot swap: seconds between checks of the registry alias (needs ``models:/NAME@ALIAS``).
    workers : int or None
        Engine processes (`bcistream.workers`). LSL: the streams are split over them (default: one
        per core, at most one per stream); Kafka: members of the consumer group (default 1). More
        than one cannot record, hot swap or classify remotely (those need one engine process).

    Raises
    ------
    bcistream.errors.ConfigError
        A ``ValueError``: one line per field refused (``LiveConfig: workers must be >= 1, got 0``),
        in place of pydantic's multi-line report.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise ConfigError.from_validation(type(self).__name__, exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> LiveConfig:
        """Validate a mapping into a config; `ConfigError` (one line per field) when refused."""
        if isinstance(obj, Mapping) and not kwargs:
            return cls(**obj)  # pydantic would wrap the ConfigError of __init__ in a ValidationError
        return super().model_validate(obj, **kwargs)

    source: str = ""
    model: str = ""
    sinks: list[str] = Field(default_factory=lambda: ["stdout"])
    trigger: Literal["hop", "cue", "both"] = "both"
    hop_s: float = 0.25
    classifier: str = "local"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    bootstrap: str | None = None
    group: str = "bcistream"
    markers_topic: str = "eeg.markers"
    dead_letter_topic: str = "eeg.dead-letter"
    kafka_config: dict[str, object] = Field(default_factory=dict)
    resolve_timeout: float = Field(default=5.0, gt=0)
    skip_backlog: bool = False
    units: str | None = None
    max_decisions: int | None = Field(default=None, ge=1)
    duration: float | None = Field(default=None, gt=0)
    idle_exit: float | None = Field(default=None, gt=0)
    tracking_uri: str | None = None
    record: bool = False
    record_store: str | None = None
    record_preroll: float = Field(default=1.0, ge=0)
    poll_interval: float | None = None
    updates_topic: str = "model-updates"
    workers: int | None = Field(default=None, ge=1)

    @field_validator("hop_s")
    @classmethod
    def _hop(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"hop_s must be > 0, got {value}")
        return value

    @field_validator("classifier")
    @classmethod
    def _classifier(cls, value: str) -> str:
        if value != "local" and not value.startswith(("http://", "https://")):
            raise ValueError(f"classifier must be 'local' or an http(s) URL, got {value!r}")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        # Checked when the config is made, not when the system opens ("" = a source object).
        return _spec(value, ("lsl", "kafka")) if value else value

    @field_validator("sinks")
    @classmethod
    def _sinks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        from bcistream.streamer.endpoints import SINK_KINDS

        specs = [_spec(v, SINK_KINDS) for v in value]
        # A decision outlet named like an input stream would be found by the next `--from lsl:NAME`
        # (or by this run on a reconnect) and decoded as EEG.
        kind, _, names = str(info.data.get("source") or "").partition(":")
        if kind == "lsl" and not names.startswith("source_id="):
            inputs = {n.strip() for n in names.split(",") if n.strip()}
            for spec in specs:
                sink_kind, _, name = spec.partition(":")
                if sink_kind in ("lsl", "lsl-proba") and name in inputs:
                    raise ValueError(f"outlet {spec!r} has the name of an input stream (source "
                                     f"'lsl:{names}'); give the decisions another name")
        return specs

    @field_validator("poll_interval")
    @classmethod
    def _poll(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"poll_interval must be > 0, got {value}")
        return value

    @property
    def triggers(self) -> tuple[str, ...]:
        """The engine's triggers for `trigger`."""
        return TRIGGERS[self.trigger]


def _spec(spec: str, kinds: tuple[str, ...]) -> str:
    """``spec`` when it is ``KIND:VALUE`` of ``kinds``; else ValueError (pydantic reports it)."""
    from bcistream.errors import BcistreamError
    from bcistream.streamer.endpoints import split_spec

    try:
        split_spec(spec, kinds)
    except BcistreamError as exc:
        raise ValueError(str(exc)) from None
    return spec
