"""The live system as a Python API: `LiveConfig` → `LiveSystem` (source → engine → sinks, metrics,
hot swaps, recording) or `run_live`. ``bcistream run`` is a thin layer over it."""

from bcistream.live.config import LiveConfig
from bcistream.live.stats import LiveStats
from bcistream.live.system import LiveSummary, LiveSystem, run_live

__all__ = ["LiveConfig", "LiveStats", "LiveSummary", "LiveSystem", "run_live"]
