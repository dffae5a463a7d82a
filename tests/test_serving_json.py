"""JSON bodies of the service: parsed fast, every malformed body refused with one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bcistream.serving.routes import RequestError, parse_json


def test_a_trial_parses_to_the_same_values_as_the_stdlib():
    trial = np.round(np.random.default_rng(0).standard_normal((1, 22, 1000)) * 1e-5, 9)
    body = json.dumps({"trials": trial.tolist(), "units": "V"}).encode()
    got = parse_json(body)
    assert got == json.loads(body)
    assert np.array_equal(np.asarray(got["trials"]), trial)


def test_nan_and_infinity_tokens_parse_as_json_loads_does():
    got = parse_json(b'{"trials": [NaN, Infinity, -Infinity]}')["trials"]
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf


@pytest.mark.parametrize(("body", "message"), [
    (b"", "empty body"),
    (b"  \n", "empty body"),
    (b"\xff\xfe{\"trials\": 1}", "body is not UTF-8 text"),
    (b"[" * 50_000 + b"]" * 50_000, "body nests too deeply"),
    (b'{"trials": [1, 2', "body is not valid JSON (EOF while parsing a list at line 1 column 16)"),
    (b'{"trials": 1} x', "body is not valid JSON (trailing characters at line 1 column 15)"),
    (b"{'trials': 1}", "body is not valid JSON (key must be a string at line 1 column 2)"),
])
def test_malformed_bodies_are_refused_in_one_line(body, message):
    with pytest.raises(RequestError) as err:
        parse_json(body)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
