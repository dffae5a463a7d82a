"""The HTTP API of a real `bentoml serve` (token auth on, small body limit): answers, refusals, metrics."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcistream.data.loader import load_recording
from bcistream.pipeline import decode_filtered, epochs_from_recording
from bcistream.realtime.protocols import UnknownVersionError
from bcistream.serving import Client, ServingError
from tests.serving_support import MODEL_NAME, Server, make_registry

pytestmark = pytest.mark.slow

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_AUTH = {**AUTH, "content-type": "application/json"}
MAX_MB = 8


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return make_registry(tmp_path_factory.mktemp("serving-api"), n_versions=1)


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    srv = Server({"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
                  "BCISTREAM_TRACKING_URI": registry.tracking_uri, "BCISTREAM_API_TOKEN": TOKEN,
                  "BCISTREAM_MAX_BODY_MB": str(MAX_MB), "BCISTREAM_POLL_S": "30"},
                 cwd=tmp_path_factory.mktemp("serving-api-run"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, token=TOKEN) as c:
        yield c


@pytest.fixture(scope="module")
def pipe(registry):
    return registry.versions["1"]


@pytest.fixture(scope="module")
def trials(registry):
    """Raw E-session trials with 1 s of pre-roll before each cue-locked window."""
    rec = load_recording(registry.files["E"])
    prof = rec.profile
    ends = [c.sample + prof.offset_samples + prof.window_samples for c in rec.cues][:8]
    return np.stack([rec.data[:, e - prof.window_samples - 250:e] for e in ends])


def test_classify_equals_the_offline_pipeline(client, pipe, trials):
    pred = client.classify(trials)
    np.testing.assert_array_equal(pred.labels, pipe.predict(trials))
    np.testing.assert_allclose(pred.probabilities, pipe.predict_proba(trials), rtol=0, atol=1e-12)
    assert pred.version == "1" and pred.preroll is True and pred.warning is None
    assert pred.classes == [str(c) for c in pipe.named_steps["clf"].classes_]
    binary = client.classify_npy(trials)  # raw .npy body
    np.testing.assert_array_equal(binary.labels, pred.labels)
    np.testing.assert_allclose(binary.probabilities, pred.probabilities, rtol=0, atol=1e-12)
    form = httpx.post(f"{client.url}/classify_npy", files={"trials": ("t.npy", _npy(trials))}, headers=AUTH)
    assert form.status_code == 200 and form.json()["labels"] == list(pred.labels)


def test_classify_without_preroll_answers_and_warns(client, pipe, trials):
    bare = trials[:2, :, -750:]
    pred = client.classify(bare)
    assert pred.preroll is False and "no pre-roll" in pred.warning
    np.testing.assert_array_equal(pred.labels, pipe.predict(bare))


def test_file_upload_gives_per_trial_labels_and_scores(client, pipe, registry):
    result = client.classify_file(registry.files["E"], labels=registry.files["labels"])
    rec = load_recording(registry.files["E"])  # finds A01E.mat beside it
    ep = epochs_from_recording(pipe, rec)
    pred, proba = decode_filtered(pipe, ep.X)
    assert [t["label"] for t in result.trials] == list(pred)
    assert [t["true_label"] for t in result.trials] == list(ep.y)
    assert [t["cue_index"] for t in result.trials] == list(ep.cue_index)
    np.testing.assert_allclose([t["probabilities"] for t in result.trials], proba, atol=1e-12)
    assert result.accuracy == pytest.approx(float(np.mean(pred == ep.y)))
    assert result.kappa is not None and result.version == "1"
    unlabelled = client.classify_file(registry.files["E"])  # no .mat: predictions only
    assert unlabelled.accuracy is None and unlabelled.labels == result.labels


def test_classify_features_and_unknown_version(client, pipe):
    feats = np.random.default_rng(1).standard_normal((3, 6))
    pred = client.classify_features(feats, "1")
    # The service evaluates the final step with numpy: sklearn's predict_proba to rounding.
    np.testing.assert_allclose(pred.probabilities, pipe[-1].predict_proba(feats), rtol=0, atol=1e-12)
    with pytest.raises(UnknownVersionError) as info:
        client.classify_features(feats, "99")
    assert info.value.requested == "99" and info.value.current == "1"


def test_model_readyz_and_metrics(client, server):
    info = client.model()
    assert info["version"] == "1" and info["alias"] == "champion" and info["name"] == MODEL_NAME
    assert info["profile"]["sfreq"] == 250.0 and info["n_features"] == 6
    assert "accuracy" in info["metrics"]
    ready = httpx.get(f"{server.url}/readyz").json()  # open without the token
    assert ready["ready"] and ready["registry_reachable"] and ready["version"] == "1"
    assert httpx.get(f"{server.url}/livez").status_code == 200
    text = httpx.get(f"{server.url}/metrics").text
    assert 'bcistream_request_seconds_count{endpoint="/classify",status="200"}' in text
    assert 'bcistream_trials_per_request_count{endpoint="/classify"}' in text
    assert "bentoml_service_request_total" in text  # BentoML's own metrics are still there


def test_auth(server):
    body = {"features": [[0.0] * 6], "version": "1"}
    assert httpx.post(f"{server.url}/classify_features", json=body).status_code == 401
    wrong = httpx.post(f"{server.url}/classify_features", json=body, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
    assert httpx.get(f"{server.url}/model").status_code == 401
    assert httpx.post(f"{server.url}/classify_features", json=body, headers=AUTH).status_code == 200


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


W = [[1e-6] * 800] * 22
BAD_JSON = [
    ("/classify", {"trials": []}, 400, "empty batch"),
    ("/classify", {"trials": [[[1e-6] * 800] * 21]}, 400, "21 channels"),
    ("/classify", {"trials": [[[1e-6] * 700] * 22]}, 400, "700 samples"),
    ("/classify", {"trials": [W, [[1e-6] * 799] * 22]}, 400, "equal lengths"),
    ("/classify", {"trials": [W], "sfreq": 500}, 400, "500 Hz"),
    ("/classify", {"trials": [[1.0, 2.0]]}, 400, "validation error"),
    ("/classify", {"wrong": 1}, 400, "validation error"),
    ("/classify_features", {"features": [[1.0] * 5], "version": "1"}, 400, "expects 6"),
    ("/classify_features", {"features": [], "version": "1"}, 400, "empty batch"),
    ("/classify_features", {"features": [[1.0] * 6]}, 400, "validation error"),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), BAD_JSON)
def test_bad_json_gets_4xx(server, path, body, status, needle):
    r = httpx.post(f"{server.url}{path}", json=body, headers=AUTH)
    assert r.status_code == status
    assert needle in r.text


def test_non_finite_values_get_400(server):
    text = json.dumps({"trials": [[[1e-6] * 799 + [float("nan")]] * 22]})  # json writes NaN
    r = httpx.post(f"{server.url}/classify", content=text, headers=JSON_AUTH)
    assert r.status_code == 400 and "NaN or Inf" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_features", headers={**AUTH, "content-type": "application/json"},
                   content='{"features": [[1, 2, 3, 4, 5, Infinity]], "version": "1"}')
    assert r.status_code == 400 and "NaN or Inf" in r.json()["error"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"not an npy file", "not a readable .npy"),
        (_npy(np.array([{"a": 1}], dtype=object)), "not a readable .npy"),  # pickle is never loaded
        (_npy(np.array(["a", "b"])), "numeric array"),
        (_npy(np.zeros((2, 22, 100), dtype=np.float32)), "100 samples"),
    ],
)
def test_bad_npy_gets_400(server, payload, needle):
    r = httpx.post(f"{server.url}/classify_npy", files={"trials": ("t.npy", payload)}, headers=AUTH)
    assert r.status_code == 400 and needle in r.json()["error"]
    r = httpx.post(f"{server.url}/raw/classify_npy", content=payload,
                   headers={**AUTH, "content-type": "application/octet-stream"})
    assert r.status_code == 400 and needle in r.json()["error"]


def test_bad_files_get_400(server, fixtures_dir, tmp_path):
    def post(name, data):
        return httpx.post(f"{server.url}/classify_file", files={"file": (name, data)}, headers=AUTH)

    # A text value in a file field would make BentoML download it as a URL: refused up front.
    r = httpx.post(f"{server.url}/classify_file", data={"file": "http://example.com/A01T.gdf"},
                   files={"labels": ("l.mat", b"x")}, headers=AUTH)
    assert r.status_code == 400 and "must be a file upload" in r.json()["error"]
    r = post("notes.txt", b"hello")
    assert r.status_code == 400 and "'.txt'" in r.json()["error"]
    r = post("broken.gdf", b"GDF garbage")
    assert r.status_code == 400 and "MNE cannot read" in r.json()["error"]
    r = post("ecg.gdf", (fixtures_dir / "ecg-1ch.gdf").read_bytes())
    assert r.status_code == 400 and "lacks 22 of the 22 channels" in r.json()["error"]
    import mne

    raw = mne.io.read_raw_gdf(fixtures_dir / "A99T-synthetic.gdf", preload=True, verbose="error")
    raw.resample(125, verbose="error")
    path = tmp_path / "slow_raw.fif"
    raw.save(path, verbose="error")
    r = post("slow_raw.fif", path.read_bytes())
    assert r.status_code == 400 and "125 Hz" in r.json()["error"] and "250 Hz" in r.json()["error"]


def test_oversized_bodies_get_413(server):
    big = b"x" * (MAX_MB * 1024 * 1024 + 10)
    r = httpx.post(f"{server.url}/classify", content=big, headers=JSON_AUTH)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_npy", files={"trials": ("t.npy", big)}, headers=AUTH)
    assert r.status_code == 413
    r = httpx.post(f"{server.url}/raw/classify_npy", content=big,
                   headers={**AUTH, "content-type": "application/octet-stream"})
    assert r.status_code == 413


def test_client_raises_serving_error_with_status(client):
    with pytest.raises(ServingError) as info:
        client.classify(np.zeros((1, 21, 800)))
    assert info.value.status == 400 and "21 channels" in str(info.value)


def test_cli_classify(server, registry, capsys):
    from bcistream.cli import main

    code = main(["classify", str(registry.files["E"]), "--url", server.url, "--token", TOKEN,
                 "--labels", str(registry.files["labels"]), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "1" and 0 <= out["accuracy"] <= 1 and len(out["trials"]) > 0
    assert main(["classify", str(registry.files["E"]), "--url", server.url]) == 2  # no token: 401


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
_fields = st.sampled_from(["trials", "features", "version", "sfreq"])


_FORM_FIELDS = st.sampled_from(["trials", "file", "labels", "version", "features", "x"])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/classify", "/classify_features", "/classify_npy", "/classify_file",
                             "/raw/classify_npy"]),
       kind=st.sampled_from(["json", "form-files", "form-text", "other"]),
       body=st.one_of(_json, st.dictionaries(_fields, _json, max_size=3)),
       files=st.dictionaries(_FORM_FIELDS, st.tuples(st.sampled_from(["x.npy", "x.gdf", "x.mat", "x"]),
                                                       st.binary(max_size=64)), max_size=3),
       texts=st.dictionaries(_FORM_FIELDS, st.text(max_size=20), max_size=3))
def test_generated_bodies_never_get_5xx(server, path, kind, body, files, texts):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        if kind == "json":
            r = http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
        elif kind == "form-files":
            r = http.post(path, files=files or {"x": ("x", b"")}, data=texts)
        elif kind == "form-text":
            r = http.post(path, files={"zz": ("z", b"")}, data=texts)
        else:
            ctype = "application/octet-stream" if path.startswith("/raw") else "text/plain"
            r = http.post(path, content=json.dumps(body).encode() + files.get("x", ("", b""))[1],
                          headers={"content-type": ctype})
    assert r.status_code < 500, (path, kind, body, files, texts, r.status_code, r.text[:300])


def test_wrong_media_type_gets_415(server):
    r = httpx.post(f"{server.url}/classify", files={"trials": ("t", b"\x80")}, headers=AUTH)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_npy", json={"trials": 1}, headers=AUTH)
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = httpx.post(f"{server.url}/raw/classify_npy", json={"trials": 1}, headers=AUTH)
    assert r.status_code == 415 and "application/octet-stream" in r.json()["error"]
