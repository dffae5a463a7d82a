"""LSL sink: decisions as an irregular-rate string marker stream (one JSON object per sample)."""

from __future__ import annotations

from collections.abc import Sequence

from bcistream.realtime.records import Decision

__all__ = ["LslDecisionSink"]


class LslDecisionSink:
    """Publishes decisions on an LSL marker outlet.

    Each decision is one sample holding `Decision.to_json`, stamped with the timestamp of the
    window's last sample (the EEG stream's clock, corrected to this machine's LSL clock), so a
    consumer lines decisions up with the EEG without knowing the engine's latency.

    Parameters
    ----------
    name : str
        Outlet name (type ``Markers``).
    source_id : str, optional
        Stable id so consumers reconnect to a restarted engine.
    """

    def __init__(self, name: str = "bcistream-decisions", source_id: str | None = None) -> None:
        import pylsl

        self._pylsl = pylsl
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"bcistream-{name}")
        info.desc().append_child_value("schema", "bcistream.decision/1")
        self.outlet = pylsl.StreamOutlet(info)

    def write(self, decisions: Sequence[Decision]) -> None:
        """Push each decision now (pushthrough: no batching delay)."""
        for d in decisions:
            stamp = d.timestamp if d.timestamp is not None else self._pylsl.local_clock()
            self.outlet.push_sample([d.to_json()], stamp, True)

    def flush(self) -> None:
        """Samples are pushed through on write."""

    def close(self) -> None:
        """Destroy the outlet (consumers see it vanish)."""
        self.outlet = None
