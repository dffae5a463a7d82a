"""``--from`` / ``--to`` specs -> sources and sinks (``lsl:NAME``, ``kafka:TOPIC``, ``jsonl:PATH`` ...)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bcistream.data.contract import volts_per_unit
from bcistream.data.profiles import Profile
from bcistream.errors import BcistreamError
from bcistream.realtime.protocols import Sink, Source
from bcistream.streamer.lsl_sink import OutletMeta

__all__ = ["SINK_KINDS", "OutletMeta", "TransportOptions", "open_sink", "open_source", "split_spec"]


@dataclass
class TransportOptions:
    """Transport settings shared by sources and sinks.

    Parameters
    ----------
    bootstrap : str
        Kafka bootstrap servers.
    group : str
        Kafka consumer group.
    markers_topic, dead_letter_topic : str
    kafka_config : dict
        Extra kafka-python settings (security, SASL, TLS, timeouts).
    warmup_messages : int
        Kafka messages re-read before the committed offset to rebuild stream state.
    resolve_timeout : float
        Seconds to wait for each LSL stream.
    skip_backlog : bool
        Drop what an LSL outlet buffered before the inlet opened.
    lsl_markers : bool
        Open ``NAME-markers`` cue streams on LSL.
    units : str or None
        Unit of streams that declare none (no LSL channel units, no Kafka ``units`` header);
        overrides the profile's ``units``. ``None``: the profile's, else a plausibility check.
    """

    bootstrap: str = "127.0.0.1:9092"
    group: str = "bcistream"
    markers_topic: str = "eeg.markers"
    dead_letter_topic: str = "eeg.dead-letter"
    kafka_config: dict[str, Any] = field(default_factory=dict)
    warmup_messages: int = 256
    resolve_timeout: float = 5.0
    skip_backlog: bool = False
    lsl_markers: bool = True
    units: str | None = None


def split_spec(spec: str, kinds: tuple[str, ...]) -> tuple[str, str]:
    """``"kafka:eeg.raw"`` -> ("kafka", "eeg.raw"); `BcistreamError` naming the accepted kinds."""
    kind, sep, value = spec.partition(":")
    if kind == "stdout" and not sep:
        return "stdout", ""
    if kind not in kinds or not value:
        raise BcistreamError(f"'{spec}': expected one of {', '.join(k + ':...' for k in kinds)}")
    return kind, value


def open_source(spec: str, profile: Profile, opts: TransportOptions) -> Source:
    """``lsl:NAME[,NAME...]`` (or ``lsl:source_id=ID``) or ``kafka:TOPIC``."""
    kind, value = split_spec(spec, ("lsl", "kafka"))
    if opts.units is not None:
        volts_per_unit(opts.units)  # UnitError naming the units known
        profile = profile.model_copy(update={"units": opts.units})
    if kind == "lsl":
        from bcistream.streamer.lsl_source import LslSource

        names = [v for v in value.split(",") if v]
        return LslSource(names, profile, markers=opts.lsl_markers, resolve_timeout=opts.resolve_timeout,
                         skip_backlog=opts.skip_backlog)
    from bcistream.streamer.kafka_source import KafkaSource

    return KafkaSource(opts.bootstrap, value, group=opts.group, markers_topic=opts.markers_topic or None,
                       dead_letter_topic=opts.dead_letter_topic, n_channels=profile.n_channels,
                       sfreq=profile.sfreq, kafka_config=opts.kafka_config,
                       warmup_messages=opts.warmup_messages, units=profile.units)


#: Decision sink kinds of `open_sink` (``--to KIND:VALUE``).
SINK_KINDS = ("stdout", "jsonl", "lsl", "lsl-proba", "lsl-labels", "kafka")


def open_sink(spec: str, opts: TransportOptions, meta: OutletMeta | None = None,
              streams: Sequence[str] = ()) -> Sink:
    """Open a decision sink.

    Parameters
    ----------
    spec : str
        ``stdout``, ``jsonl:PATH``, ``lsl:NAME`` (JSON marker outlet), ``lsl-proba:NAME`` (numeric
        outlet per stream: one float32 channel per class), ``lsl-labels:NAME`` (cue-only label
        outlet per stream) or ``kafka:TOPIC``.
    opts : TransportOptions
    meta : OutletMeta, optional
        Model, version, profile and classes for LSL outlets' ``desc`` (required for
        ``lsl-proba`` and ``lsl-labels``).
    streams : sequence of str
        Source streams known up front (their per-stream outlets exist from the start).
    """
    kind, value = split_spec(spec, SINK_KINDS)
    if kind in ("lsl-proba", "lsl-labels"):
        from bcistream.streamer.lsl_sink import LslLabelSink, LslProbabilitySink

        if meta is None:
            raise BcistreamError(f"'{spec}': a probability or label outlet needs the model's classes")
        cls = LslProbabilitySink if kind == "lsl-proba" else LslLabelSink
        return cls(value, meta, streams=streams)
    if kind == "stdout":
        from bcistream.streamer.sinks import StdoutSink

        return StdoutSink()
    if kind == "jsonl":
        from bcistream.streamer.sinks import JsonlSink

        return JsonlSink(value)
    if kind == "lsl":
        from bcistream.streamer.lsl_sink import LslDecisionSink

        return LslDecisionSink(value, meta=meta)
    from bcistream.streamer.kafka_sink import KafkaDecisionSink

    return KafkaDecisionSink(opts.bootstrap, value, opts.kafka_config)
