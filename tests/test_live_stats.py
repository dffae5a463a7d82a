"""The run's tally: whole-run cue accuracy (the summary) beside the rolling one (the live view)."""

from __future__ import annotations

from bcistream.live.stats import LiveStats
from bcistream.realtime.records import Decision


def _cue(i: int, right: bool) -> Decision:
    return Decision(stream_id="s", trigger="cue", window_end=i * 1000 + 750, timestamp=None, label="left",
                    probabilities={"left": 0.9, "right": 0.1}, model_version="1",
                    cue_label="left" if right else "right", latency_ms=1.0)


def test_run_accuracy_counts_every_labelled_cue_not_the_last_40():
    stats = LiveStats()
    stats.add([_cue(i, right=i < 30) for i in range(48)])  # 30 right, then 18 wrong
    accuracy, n = stats.run_accuracy()
    assert n == 48 and accuracy == 30 / 48
    assert stats.accuracy() == 22 / 40  # the view's rolling figure: the last 40 only
