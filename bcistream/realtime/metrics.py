"""Prometheus metrics of the engine, on a registry the caller gives (no global registry)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from bcistream.realtime.events import EngineEvent
from bcistream.realtime.records import Decision

__all__ = ["LATENCY_BUCKETS", "EngineMetrics", "source_metrics"]

#: Decision latency buckets in seconds (chunk arrival -> decision).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class EngineMetrics:
    """Counters, gauges and a latency histogram fed from `Engine.stats`, the decisions and events.

    One family per fact: every event (engine or source, any kind, new kinds included) is counted in
    ``bcistream_events_total{kind,reason}`` and nowhere else; sample counts are in samples; the model
    version is ``bcistream_model_info``. See docs/metrics.md.

    Parameters
    ----------
    registry : CollectorRegistry
        Where the metrics are registered (exposing them over HTTP is the adapters' job).
    namespace : str
        Metric name prefix.
    """

    def __init__(self, registry: CollectorRegistry, namespace: str = "bcistream") -> None:
        ns, reg = namespace, registry
        self.samples_in = Counter("engine_samples_in", "Samples accepted into the filters", namespace=ns,
                                  registry=reg)
        self.decisions_out = Counter("engine_decisions_out", "Decisions made", ["trigger"],
                                     namespace=ns, registry=reg)
        self.latency = Histogram("engine_decision_latency_seconds", "Chunk arrival to decision",
                                 buckets=LATENCY_BUCKETS, namespace=ns, registry=reg)
        self.gap_samples = Counter("engine_gap_samples", "Samples missing in gaps", namespace=ns,
                                   registry=reg)
        self.duplicates = Counter("engine_duplicate_samples", "Samples dropped as already seen",
                                  namespace=ns, registry=reg)
        self.events = Counter("events", "Events of the engine and its source (gap, refused, cue_lost, "
                              "classifier, error, swap, dead_letter, stall, ...)", ["kind", "reason"],
                              namespace=ns, registry=reg)
        self.active_streams = Gauge("engine_active_streams", "Streams the engine holds", namespace=ns,
                                    registry=reg)
        self.model = Info("model", "Model version the engine runs", namespace=ns, registry=reg)
        self._last: dict[str, int] = {}
        self._version: str | None = None

    def _delta(self, stats: dict, key: str) -> int:
        value = int(stats.get(key, 0))
        delta = value - self._last.get(key, 0)
        self._last[key] = value
        return max(delta, 0)

    def events_seen(self, events: Sequence[EngineEvent]) -> None:
        """Count events in ``bcistream_events_total{kind,reason}`` (any kind, new ones included)."""
        for ev in events:
            self.events.labels(kind=ev.kind, reason=ev.reason).inc()

    def observe(self, engine: object, decisions: Sequence[Decision] = (),
                events: Sequence[EngineEvent] = ()) -> None:
        """Bring the metrics up to date with ``engine.stats()``, decisions and drained events."""
        stats = engine.stats()
        self.samples_in.inc(self._delta(stats, "samples_in"))
        self.gap_samples.inc(self._delta(stats, "gap_samples"))
        self.duplicates.inc(self._delta(stats, "duplicate_samples"))
        self.events_seen(events)
        self.active_streams.set(stats.get("streams", 0))
        version = str(stats.get("model_version", ""))
        if version != self._version:
            self.model.info({"version": version})
            self._version = version
        hop = sum(1 for d in decisions if d.trigger == "hop")
        if hop:
            self.decisions_out.labels(trigger="hop").inc(hop)
        if len(decisions) - hop:
            self.decisions_out.labels(trigger="cue").inc(len(decisions) - hop)
        for d in decisions:
            self.latency.observe(d.latency_ms / 1000.0)


def source_metrics(registry: CollectorRegistry, source: object, namespace: str = "bcistream") -> None:
    """Gauges read from a source at scrape time: Kafka lag per partition (when it has ``lag()``).

    ``bcistream_source_lag_messages{partition}``: messages between the consumer's position and
    the partition's high watermark (``topic[partition]``). Counts of the source's events (dead
    letters, stalls, ...) are in ``bcistream_events_total``, not here.
    """
    from prometheus_client.core import GaugeMetricFamily

    lag = getattr(source, "lag", None)
    if not callable(lag):
        return

    class _Lag:
        def collect(self):
            fam = GaugeMetricFamily(f"{namespace}_source_lag_messages",
                                    "Messages behind the partition's high watermark",
                                    labels=["partition"])
            for name, value in sorted(lag().items()):
                fam.add_metric([name], value)
            yield fam

        def describe(self):
            return []

    registry.register(_Lag())
