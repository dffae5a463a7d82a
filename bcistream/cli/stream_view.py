"""The live terminal view's tally moved to `bcistream.live.stats`; this name stays for old imports."""

from bcistream.live.stats import LiveStats

__all__ = ["LiveStats"]
