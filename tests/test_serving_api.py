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
JSON_MB = 6


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from bcistream.training.registry import set_alias

    reg = make_registry(tmp_path_factory.mktemp("serving-api"), n_versions=1)
    # The served version also carries "challenger" (as after a promotion): /model must still name
    # the alias the service follows.
    set_alias(reg.tracking_uri, MODEL_NAME, "challenger", "1")
    return reg


@pytest.fixture(scope="module")
def server(registry, tmp_path_factory):
    srv = Server({"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
                  "BCISTREAM_TRACKING_URI": registry.tracking_uri, "BCISTREAM_API_TOKEN": TOKEN,
                  "BCISTREAM_MAX_BODY_MB": str(MAX_MB), "BCISTREAM_MAX_JSON_MB": str(JSON_MB),
                  "BCISTREAM_POLL_S": "30"},
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
    cols = [list(pipe.classes_).index(c) for c in pred.classes]
    np.testing.assert_allclose(pred.probabilities, pipe.predict_proba(trials)[:, cols], rtol=0, atol=1e-12)
    assert pred.version == "1" and pred.preroll is True and pred.warning is None
    assert pred.classes == ["left", "right", "feet", "tongue"]  # the profile's order, not sorted
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


def test_file_upload_gives_per_trial_labels_and_scores(client, pipe, registry, tmp_path):
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
    # The session's first 200 s (under the body limit) as XDF, EEG in microvolts + a marker stream:
    # the causal filter gives its cues the answers of the whole FIF file.
    import mne

    from tests.xdf_writer import xdf_from_raw

    raw = mne.io.read_raw_fif(registry.files["E"], preload=True, verbose="error").crop(tmax=200.0)
    xdf = client.classify_file(xdf_from_raw(tmp_path / "A01E.xdf", raw))
    whole = {t["cue_index"]: t for t in result.trials}
    assert len(xdf.trials) >= 10
    for t in xdf.trials:
        same = whole[t["cue_index"]]
        assert (t["cue_sample"], t["label"]) == (same["cue_sample"], same["label"])
        np.testing.assert_allclose(t["probabilities"], same["probabilities"], atol=1e-6)  # float32 µV


def test_classify_features_and_unknown_version(client, pipe):
    feats = np.random.default_rng(1).standard_normal((3, 6))
    pred = client.classify_features(feats, "1")
    cols = [list(pipe.classes_).index(c) for c in pred.classes]
    # The service evaluates the final step with numpy: sklearn's predict_proba to rounding.
    np.testing.assert_allclose(pred.probabilities, pipe[-1].predict_proba(feats)[:, cols], rtol=0, atol=1e-12)
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


W = (np.random.default_rng(0).standard_normal((22, 800)) * 1e-5).tolist()
BAD_JSON = [
    ("/classify", {"trials": []}, 400, "empty batch"),
    ("/classify", [], 400, "empty batch"),
    ("/classify", {"trials": [[[1e-6] * 800] * 21]}, 400, "21 channels"),
    ("/classify", {"trials": [[[1e-6] * 700] * 22]}, 400, "700 samples"),
    ("/classify", {"trials": [W, [[1e-6] * 799] * 22]}, 400, "shape (2, 22, 799|800)"),
    ("/classify", {"trials": [W], "sfreq": 500}, 400, "500 Hz"),
    ("/classify", {"trials": [[1.0, 2.0]]}, 400, "got (1, 1, 2)"),
    ("/classify", {"wrong": 1}, 400, "unknown field(s) 'wrong'"),
    ("/classify", [[[0.0] * 800] * 22] * 2, 400, "trial 0 is flat"),
    ("/classify", [[0.0] * 1000] * 160, 400, "160 channels"),
    ("/classify_features", {"features": [[1.0] * 5], "version": "1"}, 400, "expects 6"),
    ("/classify_features", {"features": [], "version": "1"}, 400, "empty batch"),
    ("/classify_features", {"features": [[1e308] * 6], "version": "1"}, 400, "beyond 1e+06"),
    ("/classify_features", {"features": [[1.0] * 6]}, 400, "missing field 'version'"),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), BAD_JSON)
def test_bad_json_gets_4xx(server, path, body, status, needle):
    r = httpx.post(f"{server.url}{path}", json=body, headers=AUTH)
    assert r.status_code == status
    assert needle in r.json()["error"] and len(r.content) < 600


def test_non_finite_values_get_400(server):
    text = json.dumps({"trials": [W, [[1e-6] * 799 + [float("nan")]] * 22]})  # json writes NaN
    r = httpx.post(f"{server.url}/classify", content=text, headers=JSON_AUTH)
    assert r.status_code == 400 and "trial 1 contains NaN or Inf" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify", content=json.dumps({"trials": [W], "sfreq": float("nan")}),
                   headers=JSON_AUTH)
    assert r.status_code == 400 and "sfreq must be a finite rate" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_features", headers={**AUTH, "content-type": "application/json"},
                   content='{"features": [[1, 2, 3, 4, 5, Infinity]], "version": "1"}')
    assert r.status_code == 400 and "NaN or Inf" in r.json()["error"]


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"not an npy file", "not a readable .npy"),
        (_npy(np.array([{"a": 1}], dtype=object)), "numeric array, got dtype object"),  # never unpickled
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
    json_cap = b" " * (JSON_MB * 1024 * 1024 + 10)  # JSON has its own, smaller cap
    r = httpx.post(f"{server.url}/classify", content=json_cap, headers=JSON_AUTH)
    assert r.status_code == 413 and "/raw/classify_npy" in r.json()["error"]
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
    # A01E.mat beside A01E_raw.fif is used without --labels, as the loader's rule says
    capsys.readouterr()
    assert main(["classify", str(registry.files["E"]), "--url", server.url, "--token", TOKEN, "--json"]) == 0
    beside = json.loads(capsys.readouterr().out)
    assert beside["accuracy"] == out["accuracy"] and beside["trials"] == out["trials"]
    assert main(["classify", str(registry.files["E"]), "--url", server.url, "--token", TOKEN]) == 0
    assert f"labels: {registry.files['labels']} (beside the recording)" in capsys.readouterr().out


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
_fields = st.sampled_from(["trials", "features", "version", "sfreq", "units"])


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
    # No Content-Type at all: said so, with what the route takes (it was reported as JSON).
    for path, takes in (("/classify_file", "multipart/form-data"), ("/classify_npy", "multipart/form-data"),
                        ("/raw/classify_npy", "application/octet-stream")):
        r = httpx.post(f"{server.url}{path}", content=_npy(np.zeros((1, 22, 1000))), headers=AUTH)
        error = r.json()["error"]
        assert r.status_code == 415 and f"takes {takes}" in error and "no Content-Type header" in error, error
        assert "application/json" not in error, error


def test_bare_array_and_one_trial_get_labels(server, trials, client):
    ref = client.classify(trials)
    r = httpx.post(f"{server.url}/classify", json=trials.tolist(), headers=AUTH)
    assert r.status_code == 200 and r.json()["labels"] == list(ref.labels)
    r = httpx.post(f"{server.url}/classify", json=trials[0].tolist(), headers=AUTH)
    assert r.status_code == 200 and r.json()["labels"] == [ref.labels[0]]
    r = httpx.post(f"{server.url}/classify", json={"trials": (trials * 1e6).tolist()}, headers=AUTH)
    assert r.status_code == 400 and "microvolts" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify", json={"trials": (trials * 1e6).tolist(), "units": "uV"},
                   headers=AUTH)
    assert r.status_code == 200 and r.json()["labels"] == list(ref.labels)
    r = httpx.post(f"{server.url}/classify_npy?units=uV", headers=AUTH,
                   files={"trials": ("t.npy", _npy((trials * 1e6).astype(np.float32)))})
    assert r.status_code == 200 and r.json()["labels"] == list(ref.labels)
    assert list(client.classify_npy(trials * 1e6, units="uV").labels) == list(ref.labels)
    assert list(client.classify(trials * 1e6, units="uV").labels) == list(ref.labels)


def test_npy_header_claiming_billions_of_values_gets_400(server):
    head = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000, 1000, 8000), }"
    head += b" " * (63 - (10 + len(head)) % 64) + b"\n"
    payload = b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + b"\0" * 16
    r = httpx.post(f"{server.url}/raw/classify_npy", content=payload,
                   headers={**AUTH, "content-type": "application/octet-stream"})
    assert r.status_code == 400 and "claims shape (1000, 1000, 8000)" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_npy", files={"trials": ("t.npy", payload)}, headers=AUTH)
    assert r.status_code == 400 and "claims shape" in r.json()["error"]


def test_flat_recording_and_crlf_file_names_get_400(server, registry, tmp_path):
    import mne

    raw = mne.io.read_raw_fif(registry.files["E"], preload=True, verbose="error").crop(0, 60)
    raw._data[:] = 0.0
    path = tmp_path / "zeros_raw.fif"
    raw.save(path, verbose="error")
    r = httpx.post(f"{server.url}/classify_file", files={"file": ("zeros_raw.fif", path.read_bytes())},
                   headers=AUTH)
    assert r.status_code == 400 and "flat" in r.json()["error"]
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"trials\"; filename=\"a\r\nb.npy\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + _npy(np.zeros(3)) + \
        f"\r\n--{boundary}--\r\n".encode()
    for path_ in ("/classify_npy", "/classify_file"):
        r = httpx.post(f"{server.url}{path_}", content=body,
                       headers={**AUTH, "content-type": f"multipart/form-data; boundary={boundary}"})
        assert 400 <= r.status_code < 500, (path_, r.status_code, r.text[:200])


def test_classify_file_without_its_file_gets_400_not_a_hang(server, registry):
    # Only the optional labels: BentoML left this request hanging until the client's timeout.
    r = httpx.post(f"{server.url}/classify_file", files={"labels": ("l.mat", b"\0")}, headers=AUTH,
                   timeout=20)
    assert r.status_code == 400 and r.json()["error"] == "/classify_file: missing file upload 'file'"
    # Errors name what the client sent, never the service's temporary files.
    r = httpx.post(f"{server.url}/classify_file", files={"file": ("notes.txt", b"x")}, headers=AUTH)
    assert r.status_code == 400 and "uploaded file name 'notes.txt' ends in '.txt'" in r.json()["error"]
    r = httpx.post(f"{server.url}/classify_file", files={"file": ("x.fif", b"not fif")}, headers=AUTH)
    assert r.status_code == 400 and "PosixPath" not in r.json()["error"], r.json()
    r = httpx.post(f"{server.url}/classify_file", headers=AUTH, files=[
        ("file", ("A01E.fif", registry.files["E"].read_bytes())), ("labels", ("l.mat", b"not a mat"))])
    err = r.json()["error"]
    assert r.status_code == 400 and "/tmp" not in err and "'classlabel' variable" in err, err


def test_openapi_names_version_routes_models_and_errors(server):
    from bcistream import __version__

    doc = httpx.get(f"{server.url}/docs.json").json()
    assert doc["info"]["version"] == __version__ and doc["info"]["title"] == "bcistream"
    for path in ("/classify", "/classify_npy", "/raw/classify_npy", "/classify_file", "/classify_features",
                 "/model", "/readyz", "/livez", "/metrics"):
        assert path in doc["paths"], path
    ops = doc["paths"]
    for path in ("/classify", "/classify_npy", "/raw/classify_npy", "/classify_file", "/classify_features"):
        codes = set(ops[path]["post"]["responses"])
        assert {"200", "400", "401", "413", "415", "503"} <= codes, (path, codes)
        schema = ops[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/")
    assert "409" in ops["/classify_features"]["post"]["responses"]
    assert ops["/model"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ModelInfo"}
    assert doc["components"]["schemas"]["ClassifyResponse"]["properties"]["labels"]["type"] == "array"
    upload = ops["/classify_file"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert ".xdf" in form["properties"]["file"]["description"] and "XDF" in upload["summary"]


def test_model_reports_the_alias_it_follows(client, server):
    info = client.model()
    assert info["alias"] == "champion" and info["version"] == "1"
    # Every alias of the served version: it was only the first ("challenger") of the two.
    assert info["version_aliases"] == ["challenger", "champion"]
    # `serve` said what it serves before starting BentoML
    assert f"serving {MODEL_NAME} version 1 (following alias 'champion'" in server.log_text()


def test_serve_says_loudly_when_there_is_no_model(registry):
    from bcistream.cli.serve_cmds import describe_model

    found, line = describe_model("models:/no-such-model@champion", registry.tracking_uri)
    assert not found and line.startswith("NO MODEL") and MODEL_NAME in line and "bcistream train" in line
    found, line = describe_model(f"models:/{MODEL_NAME}/1", registry.tracking_uri)
    assert found and "version 1 (fixed version" in line


def test_pyfunc_signature_accepts_any_length_from_the_window(registry, trials):
    import mlflow

    from bcistream.training.registry import tracking

    with tracking(registry.tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
        for n_times in (750, 1000, 1500):
            out = model.predict(np.ascontiguousarray(trials[:2, :, -n_times:]).astype(np.float64))
            assert len(out) == 2


def test_client_errors_are_logged_as_one_warning_without_traceback(server):
    httpx.post(f"{server.url}/classify", json={"trials": [[[1e-6] * 800] * 21]}, headers=AUTH)
    httpx.post(f"{server.url}/classify_npy", files={"trials": ("t.npy", b"garbage")}, headers=AUTH)
    httpx.post(f"{server.url}/classify_file", files={"file": ("x.txt", b"garbage")}, headers=AUTH)
    log = server.log_text()
    assert "WARNING" in log and "21 channels" in log
    assert "Traceback" not in log
    assert " ERROR " not in log and "ERROR:" not in log
