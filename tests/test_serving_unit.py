"""Serving without a server: input checks, decoding, the model holder, the ASGI guard."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bcistream.data.profiles import load_profile
from bcistream.serving.compute import (
    RequestError,
    check_features,
    check_trials,
    classify_features,
    classify_trials,
    recording_suffix,
)
from bcistream.serving.guard import Guard, Runtime
from bcistream.serving.holder import ModelHolder, parse_model_uri
from tests.realtime_data import fitted_pipeline, synth_recording

PROF = load_profile(None)


@pytest.fixture(scope="module")
def pipe():
    return fitted_pipeline()


@pytest.mark.parametrize(
    ("trials", "needle"),
    [
        ([], "empty batch"),
        (np.zeros((0, 22, 800)), "empty batch"),
        (np.zeros((2, 2, 22, 800)), "got shape (2, 2, 22, 800)"),
        (np.zeros((1, 21, 800)), "21 channels, the model expects 22"),
        (np.zeros((1, 22, 749)), "749 samples, the model needs at least 750"),
        (np.full((1, 22, 800), np.nan), "trial 0 contains NaN or Inf"),
        (np.full((1, 22, 800), np.inf), "trial 0 contains NaN or Inf"),
        ([[[1.0] * 800] * 22, [[1.0] * 700] * 22], "shape (2, 22, 700|800)"),
        ([[["a"] * 800] * 22], "text values"),
        (np.zeros((1, 22, 800)), "trial 0 is flat"),
    ],
)
def test_check_trials_names_the_problem(trials, needle):
    with pytest.raises(RequestError, match=None) as info:
        check_trials(trials, PROF)
    assert needle in str(info.value)
    assert info.value.status == 400


def test_check_trials_refuses_another_rate():
    with pytest.raises(RequestError, match="500 Hz but the model expects 250 Hz"):
        check_trials(np.zeros((1, 22, 800)), PROF, sfreq=500)
    X = np.random.default_rng(0).standard_normal((1, 22, 800)) * 1e-5
    assert check_trials(X, PROF, sfreq=250.0).shape == (1, 22, 800)


def test_check_features():
    with pytest.raises(RequestError, match="expects 6"):
        check_features(np.zeros((2, 4)), 6)
    with pytest.raises(RequestError, match="empty batch"):
        check_features([], 6)
    with pytest.raises(RequestError, match="vector 0 contains NaN or Inf"):
        check_features([[np.nan] * 6], 6)
    with pytest.raises(RequestError, match="vector 1 has a value beyond"):
        check_features([[0.0] * 6, [1e308] * 6], 6)
    assert check_features([[0.0] * 6], 6).shape == (1, 6)


def test_classify_trials_equals_the_pipeline_with_preroll(pipe):
    rec = synth_recording(30.0, seed=3)
    ends = [c.sample + PROF.offset_samples + PROF.window_samples for c in rec.cues]
    X = np.stack([rec.data[:, e - 1000:e] for e in ends])
    out = classify_trials(pipe, X)
    np.testing.assert_array_equal(out["labels"], pipe.predict(X))
    cols = [list(pipe.classes_).index(c) for c in out["classes"]]
    assert out["classes"] == [c for c in PROF.class_names if c in pipe.classes_]  # profile order
    np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(X)[:, cols], rtol=0, atol=0)
    assert out["preroll"] is True and out["preroll_samples"] == 250 and out["warning"] is None
    bare = classify_trials(pipe, X[:, :, -750:])
    assert bare["preroll"] is False and "no pre-roll" in bare["warning"]


def test_classify_features_is_the_classifier_step(pipe):
    feats = np.random.default_rng(0).standard_normal((5, 6))
    out = classify_features(pipe, feats)
    cols = [list(pipe.classes_).index(c) for c in out["classes"]]
    # numpy from the fitted parameters == sklearn's predict_proba to rounding
    want = pipe[-1].predict_proba(feats)[:, cols]
    np.testing.assert_allclose(out["probabilities"], want, rtol=0, atol=1e-12)
    assert out["classes"] == ["left", "right"]


def test_recording_suffix():
    assert recording_suffix("tmpab12A01T.gdf") == ".gdf"
    assert recording_suffix("x.FIF.gz") == ".fif.gz"
    with pytest.raises(RequestError, match="'.txt'"):
        recording_suffix("notes.txt")
    with pytest.raises(RequestError, match="uploaded file name 'notes' has no suffix; expected one of .gdf"):
        recording_suffix("notes")


def test_parse_model_uri():
    assert parse_model_uri("models:/m@champion").alias == "champion"
    assert parse_model_uri("models:/m").alias == "champion"
    fixed = parse_model_uri("models:/m/3")
    assert fixed.version == "3" and fixed.alias is None
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        parse_model_uri("runs:/abc/model")


class FakeRegistry:
    def __init__(self, pipeline=None) -> None:
        self.alias = "1"
        self.down = False
        self.loads: list[str] = []
        self.version_aliases: dict[str, list[str]] = {}
        self.pipeline = pipeline

    def resolve(self, tracking_uri, name, alias):
        if self.down:
            raise ConnectionError("registry down")
        return self.alias

    def aliases(self, tracking_uri, name, version):
        if self.down:
            raise ConnectionError("registry down")
        return self.version_aliases.get(version, [])

    def load(self, uri, tracking_uri):
        self.loads.append(uri)
        # The version's first alias only, as a loaded model's ``alias`` is.
        first = (self.version_aliases.get(uri.rsplit("/", 1)[1]) or [None])[0]
        return SimpleNamespace(version=uri.rsplit("/", 1)[1], pipeline=self.pipeline, alias=first)

    def holder(self, uri="models:/m@champion"):
        return ModelHolder(uri, None, poll_interval=0, load=self.load, resolve=self.resolve,
                           aliases=self.aliases)


def test_holder_swaps_keeps_previous_and_survives_outage():
    reg = FakeRegistry()
    h = reg.holder()
    h.start()
    assert h.current.version == "1" and h.status()["registry_reachable"] is True
    assert h.refresh() is False  # unchanged alias: no reload
    reg.alias = "2"
    assert h.refresh() is True
    assert h.current.version == "2" and h.get("1") is not None and h.versions == ["1", "2"]
    reg.alias = "3"
    h.refresh()
    assert h.versions == ["2", "3"] and h.get("1") is None
    reg.down = True
    assert h.refresh() is False
    st = h.status()
    assert st["version"] == "3" and st["registry_reachable"] is False and st["serving_last_good_model"]
    assert "registry down" in st["last_error"]
    reg.down, reg.alias = False, "2"  # roll back to a version still held: no download
    n_loads = len(reg.loads)
    assert h.refresh() is True and h.current.version == "2" and len(reg.loads) == n_loads


def test_holder_without_model_is_not_ready():
    reg = FakeRegistry()
    reg.down = True
    h = reg.holder()
    h.start()
    assert h.current is None and h.status()["ready"] is False


def test_holder_logs_an_outage_once_not_every_poll(caplog):
    """The registry is polled every second: a long outage is one WARNING (again when it changes)."""
    reg = FakeRegistry()
    h = reg.holder()
    h.start()
    reg.down = True
    with caplog.at_level("WARNING", logger="bcistream.serving.holder"):
        for _ in range(5):
            assert h.refresh() is False
        reg.down = False
        assert h.refresh() is False and h.status()["registry_reachable"] is True
        reg.down = True
        h.refresh()
    failed = [r for r in caplog.records if "registry check failed" in r.getMessage()]
    assert len(failed) == 2, [r.getMessage() for r in failed]  # one per outage
    assert h.current.version == "1" and h.last_error == "ConnectionError: registry down"


def _guarded(token=None, max_body=1000, holder=None, **options):
    async def echo(request):
        body = await request.body()
        return JSONResponse({"n": len(body)})

    app = Starlette(routes=[Route("/classify", echo, methods=["POST"]),
                            Route("/livez", lambda r: JSONResponse({}), methods=["GET"])])
    return TestClient(Guard(app, Runtime(holder=holder), token=token, max_body=max_body, **options))


def test_guard_auth():
    c = _guarded(token="s3cret")
    assert c.post("/classify", content=b"x").status_code == 401
    assert c.post("/classify", content=b"x", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.post("/classify", content=b"x", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/livez").status_code == 200
    assert _guarded().post("/classify", content=b"x").status_code == 200


def test_guard_body_limit_by_length_and_by_stream():
    c = _guarded(max_body=1000)
    assert c.post("/classify", content=b"x" * 1000).json() == {"n": 1000}
    r = c.post("/classify", content=b"x" * 1001)
    assert r.status_code == 413 and "1001 bytes exceeds the limit of 1000" in r.json()["error"]

    def chunks():  # no Content-Length: counted while reading
        for _ in range(5):
            yield b"x" * 400

    r = c.post("/classify", content=chunks())
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]


def test_guard_readyz_detail():
    assert _guarded().get("/readyz").status_code == 503
    reg = FakeRegistry()
    h = reg.holder()
    h.start()
    reg.down = True
    h.refresh()
    r = _guarded(holder=h).get("/readyz")
    assert r.status_code == 200
    assert r.json()["registry_reachable"] is False and "registry is unreachable" in r.json()["detail"]



def test_model_names_every_alias_of_the_served_version_as_they_move(pipe):
    """/model listed only the alias a version was loaded through (or its first): a champion that
    also carried challenger showed ["challenger"]. Aliases move without the version changing."""
    reg = FakeRegistry(pipeline=pipe)
    reg.version_aliases = {"1": ["challenger", "champion"]}
    h = reg.holder()
    h.start()
    client = _guarded(holder=h)
    info = client.get("/model").json()
    assert info["alias"] == "champion" and info["version_aliases"] == ["challenger", "champion"]
    reg.version_aliases = {"1": ["champion"], "2": ["challenger"]}  # a new challenger registered
    assert h.refresh() is False
    assert client.get("/model").json()["version_aliases"] == ["champion"]
    reg.alias, reg.version_aliases = "2", {"1": ["previous"], "2": ["champion"]}  # promoted
    assert h.refresh() is True
    info = client.get("/model").json()
    assert info["version"] == "2" and info["version_aliases"] == ["champion"]
    reg.down = True  # unreachable: the aliases of the last check stay
    assert h.refresh() is False and client.get("/model").json()["version_aliases"] == ["champion"]


def test_415_names_what_the_route_takes_and_a_missing_content_type():
    """A body without Content-Type was reported as 'got Content-Type application/json' (the JSON
    default) on routes that take a form or .npy bytes."""
    client = _guarded(media_types={"/classify": "application/json", "/upload": "multipart/form-data",
                                   "/raw": "application/octet-stream"})
    for path, takes in (("/upload", "multipart/form-data"), ("/raw", "application/octet-stream")):
        r = client.post(path, content=b"x")
        error = r.json()["error"]
        assert r.status_code == 415 and f"{path} takes {takes}" in error, error
        assert "no Content-Type header" in error and "application/json" not in error, error
        r = client.post(path, content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert r.json()["error"] == f"{path} takes {takes}, got Content-Type 'text/plain'"
    assert client.post("/classify", content=b"[1]").status_code == 200  # JSON: no header is JSON
    r = client.post("/classify", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "/classify takes application/json" in r.json()["error"]


def _form(**kw):
    import httpx

    req = httpx.Request("POST", "http://x/", **kw)
    return req.read(), req.headers["content-type"].encode()


def test_check_form():
    from bcistream.serving.guard import check_form

    ok = frozenset({"file", "labels"})
    assert check_form(*_form(files={"file": ("a.gdf", b"\r\n--not-the-boundary\r\n")}), ok) is None
    assert check_form(*_form(files=[("file", ("a.gdf", b"1")), ("labels", ("l.mat", b"2"))]), ok) is None
    assert "must be a file upload" in check_form(*_form(files={"file": ("a", b"")}, data={"labels": "x"}), ok)
    assert "unknown form field 'zz'" in check_form(*_form(files={"zz": ("a", b"")}), ok)
    assert "without a boundary" in check_form(b"", b"multipart/form-data", ok)
    labels_only = _form(files={"labels": ("l.mat", b"2")})
    assert check_form(*labels_only, ok) is None
    assert check_form(*labels_only, ok, frozenset({"file"})) == "missing file upload 'file'"


def test_serve_refuses_a_bad_model_uri(capsys):
    from bcistream.cli import main

    assert main(["serve", "--model", "runs:/abc/model"]) == 2
    assert "models:/NAME@ALIAS" in capsys.readouterr().err


def test_serve_env_points_mlflow_at_the_service_registry(monkeypatch, tmp_path):
    import shutil

    from bcistream.cli.serve_cmds import serve_env

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////elsewhere.db")
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    env = serve_env("models:/m/2", "http://127.0.0.1:5000")
    shutil.rmtree(env["BENTOML_HOME"])
    assert env["MLFLOW_REGISTRY_URI"] == env["MLFLOW_TRACKING_URI"] == env["BCISTREAM_TRACKING_URI"]
    assert env["BCISTREAM_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert env["BCISTREAM_MODEL_URI"] == "models:/m/2" and env["BENTOML_DO_NOT_TRACK"] == "true"


def test_every_metric_of_a_request_names_the_route_the_client_called(pipe):
    """Trials-per-request and latency carry the same endpoint label: /classify_npy (multipart) is
    answered by the /raw/classify_npy handler but counted under /classify_npy in both."""
    import io
    import re

    from prometheus_client import CollectorRegistry, generate_latest

    from bcistream.serving.guard import ServiceMetrics
    from bcistream.serving.routes import Route as Answered
    from bcistream.serving.routes import classify_form_npy, classify_json, classify_raw_npy

    registry = CollectorRegistry()
    holder = SimpleNamespace(current=SimpleNamespace(pipeline=pipe, version="1"))
    routes = {"/classify": Answered(classify_json, "application/json", 1 << 26),
              "/raw/classify_npy": Answered(classify_raw_npy, "application/octet-stream", 1 << 26),
              "/classify_npy": Answered(classify_form_npy, "multipart/form-data", 1 << 26)}
    app = Starlette(routes=[Route("/livez", lambda r: JSONResponse({}), methods=["GET"])])
    client = TestClient(Guard(app, Runtime(holder=holder, metrics=ServiceMetrics(registry)),
                              max_body=1 << 26, routes=routes))
    rec = synth_recording(12.0, seed=1)
    n_by_route = {"/classify": 1, "/raw/classify_npy": 2, "/classify_npy": 3}
    for route, n in n_by_route.items():
        X = np.stack([rec.data[:, i * 800:i * 800 + 750] for i in range(n)])
        buf = io.BytesIO()
        np.save(buf, X)
        if route == "/classify":
            r = client.post(route, json={"trials": X.tolist()})
        elif route == "/raw/classify_npy":
            r = client.post(route, content=buf.getvalue(),
                            headers={"content-type": "application/octet-stream"})
        else:
            r = client.post(route, files={"trials": ("x.npy", buf.getvalue(), "application/octet-stream")})
        assert r.status_code == 200, r.text
        assert len(r.json()["labels"]) == n
    text = generate_latest(registry).decode()

    def labels(metric):
        return {m for m in re.findall(rf'^{metric}_count{{endpoint="([^"]+)"', text, flags=re.M)}

    assert labels("bcistream_trials_per_request") == labels("bcistream_request_seconds") == set(n_by_route)
    for route, n in n_by_route.items():
        assert f'bcistream_trials_per_request_sum{{endpoint="{route}"}} {float(n)}' in text
    # A client cannot relabel its request through the query string.
    r = client.post("/classify?:route=/forged", json={"trials": X[:1].tolist()})
    assert r.status_code == 200 and "/forged" not in generate_latest(registry).decode()
