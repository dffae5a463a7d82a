"""One parity suite for every registered decoder: streaming == the offline pipeline.

In the spirit of scikit-learn's ``parametrize_with_checks``: each check runs for each decoder.
Chunk sizes 1-500, random interleavings of three streams (one with a missing stretch, i.e. a
gap), markers early or late, model swaps mid-stream between decoders of different state shapes:
labels identical to the offline pipeline (`Pipeline.predict_proba` on windows cut from the
continuously filtered recording), probabilities within 1e-9, features within 1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcistream.decoders import DECODERS, compile_streaming
from bcistream.realtime.engine import Engine
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.model import InProcessClassifier
from tests.realtime_data import (
    RecordingClassifier,
    fitted_decoder,
    offline_windows,
    run_all,
    synth_recording,
)

NAMES = sorted(DECODERS)
#: Variants beyond the defaults whose streaming state differs (Ledoit-Wolf needs 4th moments).
VARIANTS = [(n, {}) for n in NAMES] + [("ts-lr", {"estimator": "lwf"}),
                                        ("fbcsp", {"select_k": 8, "clf": "lda"})]
IDS = [n + "".join(f"-{v}" for v in p.values()) for n, p in VARIANTS]

_CACHE: dict = {}


def decoder_pipe(name: str, params: dict, seed: int = 0):
    key = (name, tuple(sorted(params.items())), seed)
    if key not in _CACHE:
        _CACHE[key] = fitted_decoder(name, seed=seed, **params)
    return _CACHE[key]


@pytest.fixture(scope="module")
def recordings():
    return {"a": synth_recording(14.0, seed=11, nan_at=(6.0, 6.3)), "b": synth_recording(12.0, seed=12),
            "c": synth_recording(9.0, seed=13)}


def assert_rel(got: np.ndarray, want: np.ndarray, rel: float = 1e-9) -> None:
    """Each row within ``rel`` of the reference row's largest magnitude."""
    scale = np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= rel * scale), float((np.abs(got - want) / scale).max())


def check_parity(pipe, recs, decisions, features=None) -> None:
    dec = compile_streaming(pipe)
    classes = [str(c) for c in pipe[-1].classes_]  # the estimator's column order (sklearn's)
    assert sorted(classes) == sorted(str(c) for c in dec.classes)
    assert decisions, "no decisions at all"
    order = {(d.stream_id, d.trigger, d.window_end): i for i, d in enumerate(decisions)}
    assert len(order) == len(decisions), "a window was decided twice"
    for sid, rec in recs.items():
        mine = [d for d in decisions if d.stream_id == sid]
        if not mine:
            continue
        X = offline_windows(pipe, rec, [d.window_end for d in mine])
        assert not np.isnan(X).any(), "a decision was made on a window with missing samples"
        proba = pipe[1:].predict_proba(X)  # sklearn / pyriemann: the reference
        labels = pipe[-1].classes_[np.argmax(proba, axis=1)]
        got = np.array([[d.probabilities[c] for c in classes] for d in mine])
        np.testing.assert_allclose(got, proba, rtol=0, atol=1e-9)
        assert [d.label for d in mine] == [str(x) for x in labels]
        if features is not None:
            rows = [order[(d.stream_id, d.trigger, d.window_end)] for d in mine]
            assert_rel(features[rows], dec.offline_features(X))


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_fixed_chunking_features_and_labels(name, params, recordings):
    pipe = decoder_pipe(name, params)
    clf = RecordingClassifier(InProcessClassifier(pipe, "1"))
    engine = Engine(pipe, "1", classifier=clf)
    decisions = run_all(engine, MemorySource(recordings, chunk_size=25))
    check_parity(pipe, recordings, decisions, np.concatenate(clf.features))
    assert {d.trigger for d in decisions} == {"hop", "cue"}
    assert engine.stats()["gaps"] == 1


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_any_chunking_and_interleaving(name, params, recordings):
    pipe = decoder_pipe(name, params)

    @settings(deadline=None, max_examples=5, suppress_health_check=list(HealthCheck))
    @given(sizes=st.lists(st.integers(1, 500), min_size=1, max_size=6), seed=st.integers(0, 2**16),
           lag=st.integers(-400, 400), per_poll=st.integers(1, 6))
    def check(sizes, seed, lag, per_poll):
        source = MemorySource(recordings, chunk_size=sizes, interleave="random", seed=seed,
                              marker_lag=lag, chunks_per_poll=per_poll)
        clf = RecordingClassifier(InProcessClassifier(pipe, "7"))
        decisions = run_all(Engine(pipe, "7", classifier=clf), source)
        check_parity(pipe, recordings, decisions, np.concatenate(clf.features))

    check()


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_swap_mid_stream_to_and_from_another_decoder(name, params, recordings):
    """csp-svm -> this decoder -> csp-svm while streams run: every decision matches its own model."""
    mine = decoder_pipe(name, params)
    other = decoder_pipe("csp-svm", {"n_components": 4}, seed=3)
    engine = Engine(other, "v1")
    source = MemorySource(recordings, chunk_size=[25, 130, 7])
    decisions: list = []
    plan = {20: (mine, "v2"), 42: (other, "v3")}
    polls = 0
    while not source.exhausted:
        decisions.extend(engine.process(source.poll()))
        polls += 1
        if polls in plan:
            engine.swap_model(*plan[polls])
    versions = {"v1": other, "v2": mine, "v3": other}
    assert {d.model_version for d in decisions} == set(versions)
    for version, pipe in versions.items():
        check_parity(pipe, recordings, [d for d in decisions if d.model_version == version])


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=IDS)
def test_numpy_final_step_equals_the_estimator(name, params, recordings):
    """The final step evaluated from fitted parameters == sklearn / pyriemann's predict_proba."""
    pipe = decoder_pipe(name, params)
    dec = compile_streaming(pipe)
    assert dec.final.native, f"{name}: final step falls back to sklearn"
    rec = recordings["b"]
    X = offline_windows(pipe, rec, np.arange(750, rec.n_samples, 40))
    F = dec.offline_features(X)
    assert F.shape[1] == dec.n_features
    want = pipe[1:].predict_proba(X)
    np.testing.assert_allclose(dec.final.predict_proba(F), want, rtol=0, atol=1e-12)
    # The decoder's own columns follow the profile's class order.
    order = [list(pipe[-1].classes_).index(c) for c in dec.classes]
    np.testing.assert_allclose(dec.predict_proba(F), want[:, order], rtol=0, atol=1e-12)
    # Far from the training data too (probabilities near 0 / 1, large decision values).
    far = F * 3.0
    ref_in = dec.unpack(far) if dec.name == "mdm" else far
    np.testing.assert_allclose(dec.final.predict_proba(far), pipe[-1].predict_proba(ref_in), rtol=0,
                               atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), [("csp-svm", {}), ("ts-lr", {"estimator": "lwf"}), ("mdm", {})],
                         ids=["csp-svm", "ts-lr-lwf", "mdm"])
def test_one_hour_stream_keeps_parity(name, params):
    """Running sums over an hour (900 000 samples) still give the offline features to 1e-9."""
    from bcistream.data.recording import Cue, Recording
    from bcistream.realtime.engine import EngineConfig

    pipe = decoder_pipe(name, params)
    base = synth_recording(60.0, seed=21)
    reps = 60
    data = np.tile(base.data, reps)  # one hour; the filter runs continuously across the joins
    n = data.shape[1]
    cues = tuple(Cue(n - k * 1250 - 1000, "left") for k in range(4, 0, -1))
    rec = Recording(data, base.profile, cues, "hour")
    clf = RecordingClassifier(InProcessClassifier(pipe, "h"))
    engine = Engine(pipe, "h", config=EngineConfig(triggers=("cue",)), classifier=clf)
    decisions = run_all(engine, MemorySource({"h": rec}, chunk_size=250))
    assert [d.window_end for d in decisions] == [c.sample + 875 for c in cues]
    check_parity(pipe, {"h": rec}, decisions, np.concatenate(clf.features))
