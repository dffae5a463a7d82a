"""Kafka client settings: low-latency defaults, user overrides (security, SASL, TLS) and parsing.

Every kafka-python setting can be passed through ``kafka_config`` (a dict) or ``--kafka-opt
key=value`` on the command line. A key applies to every client that knows it; prefix it with
``consumer.`` or ``producer.`` to target one kind of client only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bcistream.errors import BcistreamError

__all__ = ["CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "consumer_config", "parse_kafka_opts",
           "producer_config"]

#: Consumer defaults tuned for latency: a waiting fetch returns after at most 5 ms (tansu does not
#: wake a waiting fetch on new data), small fetch sizes, manual commits, and a 6 s session timeout
#: so a dead engine's partitions move within seconds. A backlog is taken 2 000 records per poll
#: (kafka-python's default is 500): the per-poll costs (the synchronous commit, the engine's
#: per-batch work) spread over 4x the records.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "fetch_max_wait_ms": 5,
    "fetch_min_bytes": 1,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_records": 2000,
}
#: Producer defaults tuned for latency: send immediately (no linger); acks from all in-sync
#: replicas (with idempotence) so an acknowledged decision survives a broker failure.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger_ms": 0,
    "acks": "all",
}


def _coerce(value: str) -> Any:
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_kafka_opts(opts: Iterable[str]) -> dict[str, Any]:
    """``["security_protocol=SASL_SSL", "fetch_max_wait_ms=2"]`` -> dict with typed values.

    Dashes in keys become underscores (``sasl-mechanism`` = ``sasl_mechanism``).
    """
    out: dict[str, Any] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise BcistreamError(f"--kafka-opt: must look like key=value, got {opt!r}")
        out[key] = _coerce(value.strip())
    return out


def _split(kind: str, known: Mapping[str, Any], user: Mapping[str, Any] | None) -> dict[str, Any]:
    picked: dict[str, Any] = {}
    for key, value in (user or {}).items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix in ("consumer", "producer"):
            if prefix != kind:
                continue
            key = rest
            if key not in known:
                raise BcistreamError(f"unknown Kafka {kind} setting {key!r}")
        elif key not in known:
            continue
        picked[key] = value
    return picked


def _check_unknown(user: Mapping[str, Any] | None) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    for key in user or {}:
        bare = key.partition(".")[2] if key.startswith(("consumer.", "producer.")) else key
        if bare not in KafkaConsumer.DEFAULT_CONFIG and bare not in KafkaProducer.DEFAULT_CONFIG:
            raise BcistreamError(f"unknown Kafka client setting {key!r} (see kafka-python's docs)")


def consumer_config(bootstrap: str, user: Mapping[str, Any] | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """Settings for a `kafka.KafkaConsumer`: defaults, then ``overrides``, then ``user``."""
    from kafka import KafkaConsumer

    _check_unknown(user)
    return {**CONSUMER_DEFAULTS, "bootstrap_servers": bootstrap, **overrides,
            **_split("consumer", KafkaConsumer.DEFAULT_CONFIG, user)}


def producer_config(bootstrap: str, user: Mapping[str, Any] | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """Settings for a `kafka.KafkaProducer`: defaults, then ``overrides``, then ``user``."""
    from kafka import KafkaProducer

    _check_unknown(user)
    return {**PRODUCER_DEFAULTS, "bootstrap_servers": bootstrap, **overrides,
            **_split("producer", KafkaProducer.DEFAULT_CONFIG, user)}
