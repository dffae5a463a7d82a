"""Decision tally of a live run: per stream counts, rolling accuracy, latency; and its rich table."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

from bcistream.realtime.records import Decision

__all__ = ["LiveStats"]


@dataclass
class _PerStream:
    decisions: int = 0
    cue_decisions: int = 0
    last: str = "—"
    version: str = "—"  #: model version of the stream's last decision (changes on a hot swap)
    hits: deque[bool] = field(default_factory=lambda: deque(maxlen=40))  #: recent, for the view
    labelled: int = 0  #: cue decisions with a known class, whole run
    correct: int = 0  #: of which right, whole run


class LiveStats:
    """Aggregates decisions for the view and the end-of-run summary (pure, no I/O).

    Parameters
    ----------
    window : int
        Latencies kept for the percentiles; cue outcomes kept per stream for rolling accuracy.
    """

    def __init__(self, window: int = 2000) -> None:
        self.streams: dict[str, _PerStream] = {}
        self.latency: deque[float] = deque(maxlen=window)
        self.total = 0

    def add(self, decisions: Sequence[Decision]) -> None:
        """Account for new decisions."""
        for d in decisions:
            st = self.streams.setdefault(d.stream_id, _PerStream())
            st.decisions += 1
            st.last = d.label
            st.version = d.model_version
            if d.trigger == "cue":
                st.cue_decisions += 1
                if d.cue_label is not None:
                    hit = d.label == d.cue_label
                    st.hits.append(hit)
                    st.labelled += 1
                    st.correct += hit
            self.latency.append(d.latency_ms)
        self.total += len(decisions)

    def latency_ms(self) -> tuple[float, float]:
        """(p50, p99) of recent decision latencies in ms (NaN before the first decision)."""
        if not self.latency:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.fromiter(self.latency, float), [50, 99])
        return float(p50), float(p99)

    def accuracy(self, stream: str | None = None) -> float | None:
        """Rolling accuracy on labelled cues (one stream or all); None without labelled cues."""
        hits = [h for sid, st in self.streams.items() if stream in (None, sid) for h in st.hits]
        return float(np.mean(hits)) if hits else None

    def run_accuracy(self) -> tuple[float | None, int]:
        """(accuracy, count) over every labelled cue decision of the run (None without any)."""
        n = sum(st.labelled for st in self.streams.values())
        hits = sum(st.correct for st in self.streams.values())
        return (hits / n if n else None), n

    def table(self, version: str, extra: Callable[[], dict[str, object]] | None = None,
              max_rows: int = 20) -> Table:
        """A rich table of the current state."""
        p50, p99 = self.latency_ms()
        acc = self.accuracy()
        info = {"model": version, "decisions": self.total, "latency p50/p99 ms": f"{p50:.2f} / {p99:.2f}",
                "rolling accuracy": "—" if acc is None else f"{acc:.1%}"}
        info.update(extra() if extra else {})
        title = "   ".join(f"{k}: {v}" for k, v in info.items())
        table = Table("stream", "model", "decisions", "cue decisions", "last", "rolling accuracy",
                      title=title, title_justify="left")
        for sid, st in sorted(self.streams.items())[:max_rows]:
            a = self.accuracy(sid)
            table.add_row(sid, st.version, str(st.decisions), str(st.cue_decisions), st.last,
                          "—" if a is None else f"{a:.0%} of {len(st.hits)}")
        if len(self.streams) > max_rows:
            table.add_row(f"... {len(self.streams) - max_rows} more", "", "", "", "", "")
        return table
