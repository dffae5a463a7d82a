"""Parity: streaming in any chunking and interleaving == the offline pipeline on the same windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcistream.data.loader import load_recording
from bcistream.pipeline import decode_filtered, filter_recording
from bcistream.realtime.engine import Engine
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.model import InProcessClassifier
from tests.realtime_data import (
    RecordingClassifier,
    fitted_pipeline,
    offline_windows,
    run_all,
    synth_recording,
)


@pytest.fixture(scope="module")
def pipe():
    return fitted_pipeline()


@pytest.fixture(scope="module")
def recordings():
    # One stream has a missing stretch: the source drops it, the engine must reset like the offline path.
    return {"a": synth_recording(14.0, seed=11, nan_at=(6.0, 6.3)), "b": synth_recording(12.0, seed=12),
            "c": synth_recording(9.0, seed=13)}


def check_parity(pipe, recs, decisions, features=None):
    classes = list(pipe.named_steps["clf"].classes_)
    tail = pipe[1:]
    assert decisions, "no decisions at all"
    for sid, rec in recs.items():
        mine = [d for d in decisions if d.stream_id == sid]
        ends = [d.window_end for d in mine]
        X = offline_windows(pipe, rec, ends)
        assert not np.isnan(X).any(), "a decision was made on a window with missing samples"
        proba = tail.predict_proba(X)
        labels, _ = decode_filtered(pipe, X)
        got = np.array([[d.probabilities[c] for c in classes] for d in mine])
        np.testing.assert_allclose(got, proba, rtol=0, atol=1e-9)
        assert [d.label for d in mine] == list(labels)
        # Exactly one hop decision per decidable hop end, none twice.
        hop_ends = [d.window_end for d in mine if d.trigger == "hop"]
        assert len(hop_ends) == len(set(hop_ends))
    if features is not None:
        # The engine's features are the fitted CSP's features of the offline windows.
        order = {(d.stream_id, d.trigger, d.window_end): i for i, d in enumerate(decisions)}
        for sid, rec in recs.items():
            keys = [k for k in order if k[0] == sid]
            X = offline_windows(pipe, rec, [k[2] for k in keys])
            want = pipe.named_steps["csp"].transform(X)
            np.testing.assert_allclose(features[[order[k] for k in keys]], want, rtol=1e-9, atol=1e-9)


def expected_hop_ends(rec, pipe, hop=62.5):
    """Hop ends floor(k*hop+0.5) whose window holds no missing sample and lies in one segment."""
    filtered = filter_recording(pipe, rec)
    bad = np.isnan(filtered).any(axis=0)
    out, k = [], 1
    while (e := int(np.floor(k * hop + 0.5))) <= rec.n_samples:
        if e >= 750 and not bad[e - 750:e].any():
            out.append(e)
        k += 1
    return out


def test_parity_fixed_chunking_with_features(pipe, recordings):
    clf = RecordingClassifier(InProcessClassifier(pipe, "1"))
    engine = Engine(pipe, "1", classifier=clf)
    decisions = run_all(engine, MemorySource(recordings, chunk_size=25))
    check_parity(pipe, recordings, decisions, np.concatenate(clf.features))
    for sid, rec in recordings.items():
        hops = [d.window_end for d in decisions if d.stream_id == sid and d.trigger == "hop"]
        assert hops == expected_hop_ends(rec, pipe)
    gaps = [e for e in engine.events.drain() if e.kind == "gap"]
    assert [(e.stream_id, e.size) for e in gaps] == [("a", 75)]


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 500), min_size=1, max_size=8), seed=st.integers(0, 2**16),
       lag=st.integers(-400, 400), per_poll=st.integers(1, 6))
def test_parity_any_chunking_and_interleaving(pipe, recordings, sizes, seed, lag, per_poll):
    engine = Engine(pipe, "7")
    source = MemorySource(recordings, chunk_size=sizes, interleave="random", seed=seed, marker_lag=lag,
                          chunks_per_poll=per_poll)
    decisions = run_all(engine, source)
    check_parity(pipe, recordings, decisions)
    assert {d.model_version for d in decisions} == {"7"}
    # Decisions do not depend on the chunking: the same (stream, trigger, end) set every time.
    keys = {(d.stream_id, d.trigger, d.window_end) for d in decisions}
    assert len(keys) == len(decisions)
    for sid, rec in recordings.items():
        hops = sorted(d.window_end for d in decisions if d.stream_id == sid and d.trigger == "hop")
        assert hops == expected_hop_ends(rec, pipe)
        cue_ends = sorted(d.window_end for d in decisions if d.stream_id == sid and d.trigger == "cue")
        want = [c.sample + 125 + 750 for c in rec.cues
                if c.sample + 875 <= rec.n_samples
                and not np.isnan(rec.data[:, c.sample + 125:c.sample + 875]).any()
                and not (sid == "a" and c.sample + 125 < 1575 < c.sample + 875)]
        assert cue_ends == sorted(want)


def test_parity_on_the_gdf_fixture_with_missing_samples(fixtures_dir):
    rec = load_recording(fixtures_dir / "A99T-synthetic.gdf")
    assert rec.n_missing > 0
    pipe = fitted_pipeline()
    engine = Engine(pipe, "gdf")
    decisions = run_all(engine, MemorySource({"gdf": rec}, chunk_size=[32, 5, 113]))
    check_parity(pipe, {"gdf": rec}, decisions)
    assert any(d.trigger == "cue" and d.cue_label for d in decisions)
    assert engine.stats()["gaps"] == 1


def test_fast_path_equals_the_plain_pipeline_predict_path(pipe, recordings):
    """pipe.predict on the raw samples since the stream started (all of it as pre-roll) is the slow path."""
    rec = recordings["b"]
    engine = Engine(pipe, "1")
    decisions = run_all(engine, MemorySource({"b": rec}, chunk_size=[25, 7, 60]))
    classes = list(pipe.named_steps["clf"].classes_)
    picked = decisions[:: max(1, len(decisions) // 12)]
    for d in picked:
        raw = rec.data[None, :, :d.window_end]
        assert pipe.predict(raw)[0] == d.label
        np.testing.assert_allclose(pipe.predict_proba(raw)[0], [d.probabilities[c] for c in classes],
                                   atol=1e-9)
