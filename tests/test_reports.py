"""Reports people read: scores (accuracy, kappa, chance bound, ITR), figures, the band in report.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from bcistream.data.profiles import load_profile
from bcistream.training.scores import chance_upper_bound, scores_from_confusion, wolpaw_bits, wolpaw_itr

PROF = load_profile(None)


def test_wolpaw_itr_known_values():
    assert wolpaw_bits(1.0, 4) == pytest.approx(2.0)
    assert wolpaw_bits(0.7, 4) == pytest.approx(2 + 0.7 * math.log2(0.7) + 0.3 * math.log2(0.1))
    assert wolpaw_bits(0.25, 4) == 0.0 and wolpaw_bits(0.1, 4) == 0.0  # at or below chance: 0
    assert wolpaw_itr(1.0, 2, 4.0) == pytest.approx(15.0)  # 1 bit every 4 s
    assert math.isnan(wolpaw_itr(0.9, 4, 0.0))


def test_chance_bound_and_scores():
    # 48 trials, 4 classes: a random classifier stays at or below 17/48 with >= 95 % probability.
    assert chance_upper_bound(48, 4) == pytest.approx(17 / 48)
    assert chance_upper_bound(1000, 2) == pytest.approx(0.526, abs=0.002)
    conf = np.array([[10, 2, 0, 0], [1, 9, 1, 1], [0, 0, 12, 0], [3, 0, 0, 9]])
    sc = scores_from_confusion(conf)
    assert sc.n == 48 and sc.accuracy == pytest.approx(40 / 48)
    from sklearn.metrics import cohen_kappa_score

    y_true = np.repeat(np.arange(4), conf.sum(axis=1))
    y_pred = np.concatenate([np.repeat(np.arange(4), row) for row in conf])
    assert sc.kappa == pytest.approx(cohen_kappa_score(y_true, y_pred))
    assert sc.per_class_recall[2] == 1.0 and sc.chance == 0.25
    assert "κ 0.78" in sc.line() and "95 % ≤ 0.35" in sc.line()


def _png_ok(path, min_w=300, min_h=200):
    img = Image.open(path)
    assert img.width >= min_w and img.height >= min_h
    arr = np.asarray(img.convert("L"), dtype=float)
    assert arr.std() > 10  # not blank


def test_confusion_and_pattern_figures(tmp_path):
    from bcistream.pipeline import epochs_from_recording
    from bcistream.training.plots import confusion_png, topomap_png
    from tests.realtime_data import fitted_pipeline, synth_recording

    conf = np.array([[10, 2, 0, 0], [1, 9, 1, 1], [0, 0, 12, 0], [3, 0, 0, 9]])
    _png_ok(confusion_png(conf, list(PROF.class_names), tmp_path / "confusion.png", "A01: T→E"))
    pipe = fitted_pipeline()
    ep = epochs_from_recording(pipe, synth_recording(60.0, seed=1))
    path, note = topomap_png(pipe, tmp_path / "csp.png", ep.X, ep.y)
    assert note == "" and path is not None
    _png_ok(path)


def test_demo_figures_and_itr(tmp_path):
    from bcistream.cli.demo_report import summarize, write_report
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.realtime.protocols import Batch, Chunk, Marker
    from tests.realtime_data import fitted_pipeline, synth_recording

    pipe = fitted_pipeline()
    rec = synth_recording(120.0, seed=7)
    engine = Engine(pipe, version="1", config=EngineConfig(hop_s=0.25, triggers=("hop", "cue")))
    markers = [Marker("s", c.label, sample=c.sample) for c in rec.cues]
    decisions = []
    for a in range(0, rec.data.shape[1], 125):
        decisions += engine.process(Batch(chunks=[Chunk("s", rec.data[:, a:a + 125], None, a, 0.0)],
                                          markers=[m for m in markers if a <= m.sample < a + 125]))
    summary = summarize(decisions, pipe, rec, "1")
    assert summary.cue_trials > 5 and summary.agreement == 1.0
    assert summary.seconds_per_trial > 0 and summary.itr_bits_per_min >= 0
    assert -1 <= summary.online_kappa <= 1 and 0 < summary.chance_upper95 < 1
    classes = [c for c in PROF.class_names if c in set(str(c) for c in pipe.classes_)]
    paths = write_report(tmp_path, summary, decisions, classes, rec.sfreq,
                         cue_offset_s=(PROF.offset_samples + PROF.window_samples) / rec.sfreq)
    names = {p.name for p in paths}
    assert {"confusion.png", "latency.png", "decisions.png", "trials.png"} <= names
    for p in paths:
        _png_ok(p)
    md = (tmp_path / "summary.md").read_text()
    assert "itr bits per min" in md and "![trials](trials.png)" in md
