"""Decision tally of a live run: per stream counts, rolling accuracy, latency; and its rich table."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

from bcistream.realtime.records import Decision

__all__ = ["LatencyTally", "LiveStats"]


class LatencyTally:
    """Percentiles of every latency of a run, in fixed memory: a histogram of 0.1 %-wide log bins.

    A run may last days at thousands of decisions a second, so the values themselves are not
    kept. A percentile is the nearest rank's bin, reported at the bin's geometric centre: within
    0.05 % of the exact value, from 1 µs to 1 000 s (values outside count in the end bins). The
    run's line, its live view and the demo's report all use this tally, so they print the same
    figures for the same decisions.
    """

    LOW_MS = 1e-3
    RATIO = 1.001
    BINS = math.ceil(math.log(1e6 / LOW_MS) / math.log(RATIO)) + 2  #: bin 0: <= LOW_MS

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, dtype=np.int64)
        self.n = 0

    def add(self, values_ms: Iterable[float]) -> None:
        """Count latencies in ms (non-finite values are ignored)."""
        v = np.fromiter(values_ms, dtype=float)
        v = v[np.isfinite(v)]
        if not len(v):
            return
        idx = np.zeros(len(v), dtype=np.int64)
        up = v > self.LOW_MS
        idx[up] = np.floor(np.log(v[up] / self.LOW_MS) / math.log(self.RATIO)).astype(np.int64) + 1
        np.add.at(self.counts, np.minimum(idx, self.BINS - 1), 1)
        self.n += len(v)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (nearest rank) in ms; NaN before the first value."""
        if not self.n:
            return float("nan")
        rank = max(1, math.ceil(q / 100 * self.n))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return 0.0 if i == 0 else self.LOW_MS * self.RATIO ** (i - 0.5)


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

    Latency percentiles cover every decision of the run (`LatencyTally`): the live view, the
    run's last line and the demo's report give the same figures.
    """

    def __init__(self) -> None:
        self.streams: dict[str, _PerStream] = {}
        self.latency = LatencyTally()
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
        if decisions:
            self.latency.add(d.latency_ms for d in decisions)
        self.total += len(decisions)

    def latency_ms(self) -> tuple[float, float]:
        """(p50, p99) of the run's decision latencies in ms (NaN before the first decision)."""
        return self.latency.percentile(50), self.latency.percentile(99)

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
