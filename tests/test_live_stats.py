"""The run's tally: whole-run cue accuracy (the summary) beside the rolling one (the live view)."""

from __future__ import annotations

import numpy as np
import pytest

from bcistream.cli.demo_report import latency_ms
from bcistream.live.stats import LatencyTally, LiveStats
from bcistream.realtime.records import Decision


def _cue(i: int, right: bool, latency_ms: float = 1.0) -> Decision:
    return Decision(stream_id="s", trigger="cue", window_end=i * 1000 + 750, timestamp=None, label="left",
                    probabilities={"left": 0.9, "right": 0.1}, model_version="1",
                    cue_label="left" if right else "right", latency_ms=latency_ms)


def test_run_accuracy_counts_every_labelled_cue_not_the_last_40():
    stats = LiveStats()
    stats.add([_cue(i, right=i < 30) for i in range(48)])  # 30 right, then 18 wrong
    accuracy, n = stats.run_accuracy()
    assert n == 48 and accuracy == 30 / 48
    assert stats.accuracy() == 22 / 40  # the view's rolling figure: the last 40 only


def test_run_latency_covers_every_decision_as_the_demo_report_does():
    """The demo's table gave every decision's latency, the run's line (and view) the last 2 000 only."""
    rng = np.random.default_rng(0)
    slow = rng.uniform(8.0, 12.0, 3000)  # the first 3 000 decisions, then 2 000 fast ones
    latencies = np.concatenate([slow, rng.uniform(0.5, 1.5, 2000)])
    decisions = [_cue(i, True, float(ms)) for i, ms in enumerate(latencies)]
    stats = LiveStats()
    for start in range(0, len(decisions), 7):  # in batches, as the loop adds them
        stats.add(decisions[start:start + 7])
    p50, p99 = stats.latency_ms()
    exact = np.percentile(latencies, [50, 99], method="inverted_cdf")
    assert (p50, p99) == pytest.approx(exact, rel=5e-4)  # not the last 2 000 decisions' ~1.5 ms p99
    assert (p50, p99) == latency_ms(decisions)  # the demo's table: the same figures, digit for digit


def test_latency_tally_edges():
    tally = LatencyTally()
    assert np.isnan(tally.percentile(50))
    tally.add([0.0, float("nan"), 5e9, 2.0])  # NaN ignored; 0 and beyond-range in the end bins
    assert tally.n == 3 and tally.percentile(1) == 0.0
    assert tally.percentile(50) == pytest.approx(2.0, rel=5e-4) and tally.percentile(100) >= 1e6
    assert tally.counts.nbytes < 200_000  # fixed memory whatever the run's length
