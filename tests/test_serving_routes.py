"""The service's JSON and raw .npy routes without a server: accepted shapes, one-line refusals, bounds."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from bcistream.data.profiles import load_profile
from bcistream.serving.compute import RequestError, read_npy
from bcistream.serving.routes import Route, classify_json, classify_raw_npy, features_json
from tests.realtime_data import fitted_pipeline, synth_recording

PROF = load_profile(None)


@pytest.fixture(scope="module")
def runtime():
    pipe = fitted_pipeline()
    model = SimpleNamespace(pipeline=pipe, version="1")
    holder = SimpleNamespace(current=model, versions=["1"], get=lambda v: model if v == "1" else None)
    return SimpleNamespace(holder=holder, metrics=None)


@pytest.fixture(scope="module")
def trials():
    rec = synth_recording(30.0, seed=3)
    ends = [c.sample + PROF.offset_samples + PROF.window_samples for c in rec.cues]
    return np.stack([rec.data[:, e - 1000:e] for e in ends])[:4]


def post(runtime, handler, value, params=None, raw=False):
    body = value if raw else json.dumps(value).encode()
    return Route(handler, "application/json", 1 << 30)(runtime, body, params or {})


def test_bare_array_one_trial_and_object_agree(runtime, trials):
    s1, obj = post(runtime, classify_json, {"trials": trials.tolist(), "sfreq": 250})
    s2, bare = post(runtime, classify_json, trials.tolist())
    s3, one = post(runtime, classify_json, trials[2].tolist())
    assert (s1, s2, s3) == (200, 200, 200)
    assert obj["labels"] == bare["labels"] and len(obj["labels"]) == len(trials)
    assert one["labels"] == [obj["labels"][2]]
    np.testing.assert_allclose(one["probabilities"][0], obj["probabilities"][2])
    assert obj["classes"] == [c for c in PROF.class_names if c in obj["classes"]]


def test_declared_microvolts_equal_volts_and_undeclared_are_refused(runtime, trials):
    _, volts = post(runtime, classify_json, {"trials": trials.tolist()})
    status, uv = post(runtime, classify_json, {"trials": (trials * 1e6).tolist(), "units": "uV"})
    assert status == 200 and uv["labels"] == volts["labels"]
    np.testing.assert_allclose(uv["probabilities"], volts["probabilities"], rtol=1e-9)
    status, err = post(runtime, classify_json, {"trials": (trials * 1e6).tolist()})
    assert status == 400 and "microvolts" in err["error"] and '"units"' in err["error"]
    buf = io.BytesIO()
    np.save(buf, (trials * 1e6).astype(np.float32))
    status, err = post(runtime, classify_raw_npy, buf.getvalue(), raw=True)
    assert status == 400 and "microvolts" in err["error"] and "?units=uV" in err["error"]
    status, ok = post(runtime, classify_raw_npy, buf.getvalue(), {"units": "uV"}, raw=True)
    assert status == 200 and ok["labels"] == volts["labels"]
    status, err = post(runtime, classify_json, {"trials": trials.tolist(), "units": "furlongs"})
    assert status == 400 and "unknown unit" in err["error"]


def _bad(trials):
    zero = trials.copy()
    zero[1] = 0.0
    huge = np.full_like(trials, 1e300)
    nan = trials.copy()
    nan[3, 5, 7] = np.nan
    return [
        (zero.tolist(), "trial 1 is flat"),
        (huge.tolist(), "trial 0 has a sample of 1e+300 V"),
        ({"trials": huge.tolist(), "units": "V"}, "trial 0 has a sample of 1e+300 V"),
        ({"trials": nan.tolist()}, "trial 3 contains NaN or Inf"),
        ({"trials": trials.tolist(), "sfreq": float("nan")}, "sfreq must be a finite rate"),
        ({"trials": trials.tolist(), "sfreq": True}, "sfreq must be a number"),
        ({"trials": trials.tolist(), "sfreq": 500}, "500 Hz but the model expects 250 Hz"),
        ({"trials": trials.tolist(), "extra": 1}, "unknown field(s) 'extra'"),
        ({"sfreq": 250}, "missing field 'trials'"),
        ([[[True] * 800] * 22], "boolean values"),
        ([[[1e-6] * 800] * 21], "expected (n_trials, 22, >=750), got (1, 21, 800)"),
        ({"trials": [[1e-6] * 800] * 22 + [[1e-6] * 10]}, "shape (23, 10|800)"),
        ([1, 2, 3], "got shape (3,)"),
        ("text", "body must be a JSON object"),
    ]


def test_bad_trials_get_one_short_line(runtime, trials):
    for value, needle in _bad(trials):
        status, err = post(runtime, classify_json, value)
        assert status == 400, (needle, err)
        assert needle in err["error"], (needle, err["error"])
        assert "\n" not in err["error"] and len(err["error"]) < 300


def test_megabyte_of_zeros_in_the_wrong_shape_gets_a_short_answer(runtime):
    body = json.dumps([[0.0] * 1000] * 160).encode()  # ~1 MB, 2-D with 160 "channels"
    status, err = Route(classify_json, "application/json", 1 << 30)(runtime, body, {})
    assert status == 400 and "160 channels" in err["error"] and len(err["error"]) < 300
    status, err = Route(classify_json, "application/json", 1 << 30)(runtime, b"[[[0,", {})
    assert status == 400 and "not valid JSON" in err["error"]


def test_features_are_finite_and_in_range(runtime):
    for feats, needle in [([[1e308] * 6], "beyond 1e+06"), ([[0.0] * 5], "expects 6"),
                          ([["a"] * 6], "text values"), ([], "empty batch")]:
        status, err = post(runtime, features_json, {"features": feats, "version": "1"})
        assert status == 400 and needle in err["error"], (feats, err)
    status, err = post(runtime, features_json, {"features": [[0.0] * 6], "version": "7"})
    assert status == 409 and err["current_version"] == "1"
    status, ok = post(runtime, features_json, {"features": [[0.1] * 6], "version": "1"})
    assert status == 200 and np.isfinite(ok["probabilities"]).all()


def _npy_header(shape, dtype="<f8") -> bytes:
    head = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    head += b" " * (63 - (10 + len(head)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head


def test_npy_header_is_checked_before_allocating():
    payload = _npy_header((1000, 1000, 8000)) + b"\0" * 16  # claims 8e9 values (64 GB)
    tracemalloc.start()
    with pytest.raises(RequestError, match=r"claims shape \(1000, 1000, 8000\)"):
        read_npy(io.BytesIO(payload))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(RequestError, match="numeric array"):
        read_npy(io.BytesIO(_npy_header((2,), "|O")))
    with pytest.raises(RequestError, match="4 dimensions|shape"):
        read_npy(io.BytesIO(_npy_header((1, 1, 1, 1)) + b"\0" * 8))
    ok = read_npy(io.BytesIO(_npy_header((2, 3)) + np.arange(6.0).tobytes()))
    np.testing.assert_array_equal(ok, np.arange(6.0).reshape(2, 3))


def test_json_peak_memory_is_bounded_per_body_byte(runtime, trials):
    """Peak Python memory of one JSON request stays within a small multiple of its body."""
    body = json.dumps({"trials": np.repeat(trials, 4, axis=0).tolist()}).encode()
    tracemalloc.start()
    status, _ = Route(classify_json, "application/json", 1 << 30)(runtime, body, {})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert status == 200
    assert peak < 8 * len(body), (peak, len(body))


def test_npy_body_is_read_in_place_and_peak_memory_is_bounded(runtime, trials):
    from bcistream.serving.compute import read_npy_buffer

    buf = io.BytesIO()
    np.save(buf, np.repeat(trials, 16, axis=0).astype(np.float32))  # 64 trials, ~5.6 MB
    body = bytearray(buf.getvalue())
    arr = read_npy_buffer(body)
    assert np.shares_memory(arr, np.frombuffer(body, dtype=np.uint8))  # a view, not a copy
    tracemalloc.start()
    status, out = Route(classify_raw_npy, "application/octet-stream", 1 << 30)(runtime, body, {})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert status == 200 and len(out["labels"]) == 64
    # float64 copy (2x a float32 body) + the filter's output (2x) + small change
    assert peak < 6 * len(body), (peak, len(body))
