"""The classifier seam: in-process == a stand-in behind the protocol; version mismatch -> swap + retry."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.protocols import Classifier, UnknownVersionError
from tests.realtime_data import fitted_pipeline, run_all, synth_recording


class WireClassifier:
    """Like a remote service: the model is shipped serialised, features travel as JSON."""

    def __init__(self, versions: dict) -> None:
        self.models = {v: pickle.loads(pickle.dumps(p.named_steps["clf"])) for v, p in versions.items()}
        self.current = list(versions)[-1]
        self.calls = 0

    def classify(self, features, version):
        self.calls += 1
        if version not in self.models:
            raise UnknownVersionError(version, self.current)
        clf = self.models[version]
        X = np.array(json.loads(json.dumps(np.asarray(features).tolist())))
        proba = clf.predict_proba(X)
        return clf.classes_[np.argmax(proba, axis=1)], proba


@pytest.fixture(scope="module")
def pipes():
    return fitted_pipeline(seed=0), fitted_pipeline(seed=7)


@pytest.fixture(scope="module")
def recs():
    return {"a": synth_recording(10.0, seed=31), "b": synth_recording(8.0, seed=32)}


def test_stand_in_classifier_gives_identical_decisions(pipes, recs):
    pipe = pipes[0]
    wire = WireClassifier({"1": pipe})
    assert isinstance(wire, Classifier)
    local = run_all(Engine(pipe, "1"), MemorySource(recs, chunk_size=40))
    remote = run_all(Engine(pipe, "1", classifier=wire), MemorySource(recs, chunk_size=40))
    key = [(d.stream_id, d.trigger, d.window_end, d.label, d.model_version) for d in local]
    assert key == [(d.stream_id, d.trigger, d.window_end, d.label, d.model_version) for d in remote]
    # In-process the final step is evaluated with numpy from the fitted parameters: equal to
    # sklearn's predict_proba to rounding.
    for a, b in zip(local, remote, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-12)
    # All due windows of all streams of a poll go in one call.
    assert wire.calls < len(remote)


def test_unknown_version_swaps_through_the_hook_and_retries(pipes, recs):
    old, new = pipes
    wire = WireClassifier({"2": new})  # the service already moved to the new champion
    asked = []

    def hook(current):
        asked.append(current)
        return (new, current) if current == "2" else None

    engine = Engine(old, "1", classifier=wire, on_unknown_version=hook)
    decisions = run_all(engine, MemorySource(recs, chunk_size=40))
    assert asked == ["2"] and engine.version == "2"
    assert decisions and {d.model_version for d in decisions} == {"2"}
    reference = run_all(Engine(new, "2"), MemorySource(recs, chunk_size=40))
    where = [(d.stream_id, d.window_end) for d in decisions]
    assert where == [(d.stream_id, d.window_end) for d in reference]
    got = np.array([list(d.probabilities.values()) for d in decisions])
    want = np.array([list(d.probabilities.values()) for d in reference])
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_without_a_hook_the_batch_is_reported_and_the_engine_goes_on(pipes, recs):
    old, new = pipes
    engine = Engine(old, "1", classifier=WireClassifier({"2": new}), config=EngineConfig(triggers=("hop",)))
    assert run_all(engine, MemorySource(recs, chunk_size=40)) == []
    events = [e for e in engine.events.drain() if e.kind == "classifier"]
    assert events and events[0].reason == "UnknownVersionError"
    assert engine.stats()["classifier_errors"] == len(events)
