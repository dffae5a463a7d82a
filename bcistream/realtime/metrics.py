"""Prometheus metrics of the engine, on a registry the caller gives (no global registry)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from bcistream.realtime.records import Decision

__all__ = ["LATENCY_BUCKETS", "EngineMetrics"]

#: Decision latency buckets in seconds (chunk arrival -> decision).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class EngineMetrics:
    """Counters, gauges and a latency histogram fed from `Engine.stats` and the decisions.

    Parameters
    ----------
    registry : CollectorRegistry
        Where the metrics are registered (exposing them over HTTP is the adapters' job).
    namespace : str
        Metric name prefix.
    """

    def __init__(self, registry: CollectorRegistry, namespace: str = "bcistream") -> None:
        ns, reg = namespace, registry
        self.samples_in = Counter("engine_samples_in", "Samples accepted", namespace=ns, registry=reg)
        self.decisions_out = Counter("engine_decisions_out", "Decisions made", ["trigger"],
                                     namespace=ns, registry=reg)
        self.latency = Histogram("engine_decision_latency_seconds", "Chunk arrival to decision",
                                 buckets=LATENCY_BUCKETS, namespace=ns, registry=reg)
        self.gaps = Counter("engine_gaps", "Gaps detected in streams", namespace=ns, registry=reg)
        self.gap_samples = Counter("engine_gap_samples", "Samples missing in gaps", namespace=ns,
                                   registry=reg)
        self.refused = Counter("engine_refused_chunks", "Chunks refused", ["reason"], namespace=ns,
                               registry=reg)
        self.duplicates = Counter("engine_duplicate_samples", "Samples dropped as already seen",
                                  namespace=ns, registry=reg)
        self.errors = Counter("engine_stream_errors", "Unexpected per-stream errors", namespace=ns,
                              registry=reg)
        self.active_streams = Gauge("engine_active_streams", "Streams the engine holds", namespace=ns,
                                    registry=reg)
        self.model = Info("engine_model", "Model version in use", namespace=ns, registry=reg)
        self.swaps = Counter("engine_model_swaps", "Model swaps", namespace=ns, registry=reg)
        self._last: dict[str, int] = {}
        self._last_refused: dict[str, int] = {}

    def _delta(self, stats: dict, key: str) -> int:
        value = int(stats.get(key, 0))
        delta = value - self._last.get(key, 0)
        self._last[key] = value
        return max(delta, 0)

    def observe(self, engine: object, decisions: Sequence[Decision] = ()) -> None:
        """Bring the metrics up to date with ``engine.stats()`` and observe decision latencies."""
        stats = engine.stats()
        self.samples_in.inc(self._delta(stats, "samples_in"))
        self.gaps.inc(self._delta(stats, "gaps"))
        self.gap_samples.inc(self._delta(stats, "gap_samples"))
        self.duplicates.inc(self._delta(stats, "duplicate_samples"))
        self.errors.inc(self._delta(stats, "errors"))
        self.swaps.inc(self._delta(stats, "swaps"))
        for reason, count in stats.get("refused_by_reason", {}).items():
            delta = count - self._last_refused.get(reason, 0)
            self._last_refused[reason] = count
            if delta > 0:
                self.refused.labels(reason=reason).inc(delta)
        self.active_streams.set(stats.get("streams", 0))
        self.model.info({"version": str(stats.get("model_version", ""))})
        hop = sum(1 for d in decisions if d.trigger == "hop")
        if hop:
            self.decisions_out.labels(trigger="hop").inc(hop)
        if len(decisions) - hop:
            self.decisions_out.labels(trigger="cue").inc(len(decisions) - hop)
        for d in decisions:
            self.latency.observe(d.latency_ms / 1000.0)
