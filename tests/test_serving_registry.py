"""The service against a networked MLflow registry: engines through it, promotions, registry outages.

One ``mlflow server`` and one ``bentoml serve`` (no auth, fast polling) for the module; the tests
run in file order: parity with champion 1, a double promotion during a replay, then an outage
(the registry is stopped for good).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import httpx
import numpy as np
import pytest

from bcistream.data.loader import load_recording
from bcistream.pipeline import class_order
from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.memory import MemorySource
from bcistream.serving import Client, RemoteClassifier
from bcistream.training.registry import load_model, set_alias
from tests.helpers import wait_until
from tests.serving_support import MODEL_NAME, MlflowServer, Server, make_registry

pytestmark = pytest.mark.slow

URI = f"models:/{MODEL_NAME}@champion"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def registry(mlflow_server, tmp_path_factory):
    return make_registry(tmp_path_factory.mktemp("serving-registry"), n_versions=3,
                         tracking_uri=mlflow_server.url)


@pytest.fixture(scope="module")
def service(registry, tmp_path_factory):
    srv = Server({"BCISTREAM_MODEL_URI": URI, "BCISTREAM_TRACKING_URI": registry.tracking_uri,
                  "BCISTREAM_POLL_S": "0.2",
                  # Fail fast while the registry is down instead of MLflow's minutes of retries.
                  "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"},
                 cwd=tmp_path_factory.mktemp("serving-registry-run"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def streams(registry):
    """Two 150 s streams (sessions T and E of the synthetic subject) with their cues."""
    out = {}
    for key in ("T", "E"):
        rec = load_recording(registry.files[key])
        n = 150 * int(rec.sfreq)
        out[key] = replace(rec, data=rec.data[:, :n], cues=tuple(c for c in rec.cues if c.sample < n - 1000))
    return out


class Recorder:
    """A classifier proxy that keeps every call (requested version, features, answer)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, np.ndarray, object]] = []

    def classify(self, features, version):
        try:
            labels, proba = self.inner.classify(features, version)
        except Exception as exc:
            self.calls.append((version, features, exc))
            raise
        self.calls.append((version, features, (labels, proba)))
        return labels, proba


def _replay(engine: Engine, streams, on_batch=None) -> list:
    src = MemorySource(streams, chunk_size=50)
    out, i = [], 0
    while not src.exhausted:
        if on_batch is not None:
            on_batch(i)
        out.extend(engine.process(src.poll()))
        i += 1
    return out


def _key(d):
    return (d.stream_id, d.trigger, d.window_end)


def test_remote_engine_gives_the_decisions_of_local_mode(service, registry, streams):
    loaded = load_model(URI, registry.tracking_uri)
    assert loaded.version == "1"
    config = EngineConfig(hop_s=0.25)
    local = _replay(Engine(loaded.pipeline, loaded.version, config), streams)
    remote_clf = RemoteClassifier(service.url)
    try:
        remote = _replay(Engine(loaded.pipeline, loaded.version, config, classifier=remote_clf), streams)
    finally:
        remote_clf.close()
    assert len(local) > 1000 and len(remote) == len(local)
    assert sum(d.trigger == "cue" for d in remote) > 0
    for a, b in zip(local, remote, strict=True):
        assert _key(a) == _key(b) and a.label == b.label and a.model_version == b.model_version == "1"
        assert a.probabilities == b.probabilities  # JSON round trip of floats is exact


def test_promotion_during_replay_never_mixes_versions(service, registry, streams):
    loaded = load_model(URI, registry.tracking_uri)
    client = Client(service.url)
    rec = Recorder(RemoteClassifier(client))

    def follow_champion(current):
        fresh = load_model(URI, registry.tracking_uri)
        return (fresh.pipeline, fresh.version) if fresh.version == current else None

    engine = Engine(loaded.pipeline, loaded.version, EngineConfig(hop_s=0.25), classifier=rec,
                    on_unknown_version=follow_champion)

    answers: list[tuple[int, str]] = []

    def hammer(stop: threading.Event) -> None:  # requests in flight while the service swaps
        X = np.random.default_rng(0).standard_normal((1, 22, 800)) * 1e-5
        with httpx.Client(base_url=service.url, timeout=30) as http:
            while not stop.wait(0.02):
                r = http.post("/classify", json={"trials": X.tolist()})
                answers.append((r.status_code, r.json().get("version")))

    def promote(i):
        if i == 400:  # mid-replay: two promotions, so the service no longer holds version 1
            stop = threading.Event()
            side = threading.Thread(target=hammer, args=(stop,))
            side.start()
            try:
                for v in ("2", "3"):
                    set_alias(registry.tracking_uri, MODEL_NAME, "champion", v)
                    try:
                        wait_until(lambda v=v: client.model()["version"] == v, timeout=90, interval=0.2,
                                   what=f"service on {v}")
                    except TimeoutError as exc:
                        raise AssertionError(f"{exc}; readyz {client.ready()}; service log:\n"
                                             f"{service.log_text()[-4000:]}") from None
            finally:
                stop.set()
                side.join()
            assert client.model()["held_versions"] == ["2", "3"]
            assert answers and all(code == 200 for code, _ in answers)
            assert {v for _, v in answers} <= {"1", "2", "3"}

    decisions = _replay(engine, streams, on_batch=promote)
    client.close()
    refused = [c for c in rec.calls if isinstance(c[2], Exception)]
    assert len(refused) == 1 and refused[0][0] == "1" and refused[0][2].current == "3"
    pipes = registry.versions
    for version, feats, answer in rec.calls:
        if isinstance(answer, Exception):
            continue
        # The service classified with exactly the version the features were computed with.
        _, cols = class_order(pipes[version])  # answers list classes in the profile's order
        expected = pipes[version][-1].predict_proba(feats)[:, cols]
        np.testing.assert_allclose(answer[1], expected, rtol=0, atol=1e-12)  # numpy final step
    by_stream: dict[str, list[str]] = {}
    for d in decisions:
        by_stream.setdefault(d.stream_id, []).append(d.model_version)
    for versions in by_stream.values():
        assert set(versions) == {"1", "3"}
        switch = versions.index("3")
        assert versions[:switch] == ["1"] * switch and versions[switch:] == ["3"] * (len(versions) - switch)
    assert engine.version == "3" and engine.stats()["swaps"] == 1
    # The service answers raw trials with the new champion too.
    X = np.random.default_rng(0).standard_normal((1, 22, 1000)) * 1e-5
    with Client(service.url) as c:
        assert c.classify(X).version == "3"


def test_registry_outage_keeps_serving_the_last_good_model(service, mlflow_server, registry):
    mlflow_server.stop()
    def down():
        r = httpx.get(f"{service.url}/readyz").json()
        return r if r["registry_reachable"] is False else None

    detail = wait_until(down, timeout=60, what="readyz to report the registry down")
    assert detail["ready"] and detail["serving_last_good_model"] and detail["version"] == "3"
    assert "registry is unreachable" in detail["detail"] and detail["last_error"]
    X = np.random.default_rng(0).standard_normal((2, 22, 1000)) * 1e-5
    with Client(service.url) as c:
        assert c.classify(X).version == "3"
        assert c.classify_features(np.zeros((1, 6)), "3").version == "3"
        assert c.model()["version"] == "3"
    # Recovery when the registry returns is covered without servers in test_serving_unit.
