"""The routes the service answers before BentoML: JSON trials and features, and the raw .npy body.

BentoML validates JSON bodies with pydantic against the method signature: a bare array is
refused ("Input should be an object"), one wrong-shaped trial becomes 22,000 validation errors in a
multi-megabyte answer, and a 250 MB body cost 12 GB of worker memory. These handlers parse the
(size-capped) body once with the standard JSON reader, accept the shapes people send, and refuse
everything else with one line. They are plain functions ``(runtime, body, params) -> (status,
payload)`` so the rules are tested without a server; `bcistream.serving.guard.Guard` calls them
in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from bcistream.pipeline import pipeline_profile
from bcistream.serving.compute import (
    UNITS_FIX_BINARY,
    UNITS_FIX_JSON,
    RequestError,
    check_features,
    check_trials,
    classify_features,
    classify_trials,
    decoder_of,
    read_npy_buffer,
)
from bcistream.serving.guard import ROUTE_KEY, parse_form

__all__ = ["Route", "classify_form_npy", "classify_json", "classify_raw_npy", "features_json", "parse_json",
           "units_param"]

Answer = tuple[int, dict[str, Any]]

_NO_MODEL: Answer = (503, {"error": "no model loaded yet (see /readyz)"})


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body, or `RequestError` with the position of the first fault.

    Parsed by pydantic-core (Rust): a 22 x 1000 trial parses in ~1.1 ms against ~4.5 ms with
    ``json.loads``, which had become most of a single-trial request's time. NaN and Infinity
    tokens are accepted as ``json.loads`` does (the trial checks refuse non-finite samples).
    """
    if not body.strip():
        raise RequestError("empty body: send a JSON value")
    try:
        return from_json(body)
    except ValueError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("body is not UTF-8 text") from None
        if "recursion limit" in str(exc):
            raise RequestError("body nests too deeply") from None
        raise RequestError(f"body is not valid JSON ({exc})") from None


def _fields(value: Any, allowed: tuple[str, ...], required: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"body must be a JSON object with {', '.join(allowed)} (or a bare array)")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:3])
        raise RequestError(f"unknown field(s) {shown}; expected {', '.join(allowed)}")
    if required not in value:
        raise RequestError(f"missing field {required!r}; expected {', '.join(allowed)}")
    return value


def _units(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 32:
        raise RequestError('units must be a short text such as "uV", "mV" or "V"')
    return value


def units_param(params: Mapping[str, str]) -> str | None:
    """The declared unit of a binary route: ``?units=`` or the ``X-Units`` header (lower-cased key)."""
    return _units(params.get("units") or params.get("x-units") or None)


def _model(runtime: Any) -> Any:
    holder = runtime.holder
    return None if holder is None else holder.current


def _observe(runtime: Any, params: Mapping[str, str], endpoint: str, n: int) -> None:
    """Trials per request, labelled with the route the client called (``params[ROUTE_KEY]``, set
    by the guard; ``endpoint`` when called directly): the same label as the request's latency."""
    if runtime.metrics is not None:
        runtime.metrics.trials.labels(endpoint=params.get(ROUTE_KEY, endpoint)).observe(n)


def classify_json(runtime: Any, body: bytes, params: Mapping[str, str]) -> Answer:
    """``POST /classify``: ``{"trials": ..., "sfreq": ..., "units": ...}``, a bare N x C x T array,
    or one C x T trial."""
    model = _model(runtime)
    if model is None:
        return _NO_MODEL
    value = parse_json(body)
    if isinstance(value, list):
        trials, sfreq, units = value, None, units_param(params)
    else:
        value = _fields(value, ("trials", "sfreq", "units"), "trials")
        trials, sfreq, units = value["trials"], value.get("sfreq"), _units(value.get("units"))
    del value
    X = check_trials(trials, pipeline_profile(model.pipeline), sfreq, units, UNITS_FIX_JSON)
    del trials
    _observe(runtime, params, "/classify", len(X))
    out = classify_trials(model.pipeline, X)
    out["version"] = str(model.version)
    return 200, out


def features_json(runtime: Any, body: bytes, params: Mapping[str, str]) -> Answer:
    """``POST /classify_features``: ``{"features": n x k, "version": "3"}``; 409 for a version not held."""
    holder = runtime.holder
    if holder is None or holder.current is None:
        return _NO_MODEL
    value = _fields(parse_json(body), ("features", "version"), "features")
    if "version" not in value:
        raise RequestError("missing field 'version': the model version the features were computed with")
    version = value["version"]
    if isinstance(version, bool) or not isinstance(version, str | int) or len(str(version)) > 64:
        raise RequestError("version must be a model version such as \"3\"")
    model = holder.get(str(version))
    if model is None:
        cur = holder.current
        if runtime.metrics is not None:
            runtime.metrics.refused.inc()
        return 409, {"error": f"model version {str(version)!r} is not held (held: "
                              f"{', '.join(holder.versions)}); features must be recomputed with "
                              f"version {cur.version}",
                     "requested_version": str(version), "current_version": str(cur.version)}
    n_features = decoder_of(model.pipeline).n_features
    F = check_features(value["features"], n_features)
    _observe(runtime, params, "/classify_features", len(F))
    out = classify_features(model.pipeline, F)
    out["version"] = str(model.version)
    return 200, out


def classify_raw_npy(runtime: Any, body: bytes | memoryview, params: Mapping[str, str]) -> Answer:
    """``POST /raw/classify_npy``: one .npy array as the body; units from ``?units=`` / ``X-Units``."""
    model = _model(runtime)
    if model is None:
        return _NO_MODEL
    arr = read_npy_buffer(body)  # a view of the body: the data are not copied
    X = check_trials(arr, pipeline_profile(model.pipeline), None, units_param(params), UNITS_FIX_BINARY)
    del arr
    _observe(runtime, params, "/raw/classify_npy", len(X))
    out = classify_trials(model.pipeline, X)
    out["version"] = str(model.version)
    return 200, out


def classify_form_npy(runtime: Any, body: bytes, params: Mapping[str, str]) -> Answer:
    """``POST /classify_npy``: the .npy file in multipart field ``trials`` (parsed here, no temp file)."""
    problem, parts = parse_form(body, params.get("content-type", "").encode("latin-1"),
                                frozenset({"trials"}))
    if problem is not None:
        raise RequestError(f"/classify_npy: {problem}")
    data = parts["trials"][1]
    del body, parts
    return classify_raw_npy(runtime, data, params)


@dataclass(frozen=True)
class Route:
    """A route answered before BentoML: its handler, media type and body limit."""

    handler: Callable[[Any, bytes, Mapping[str, str]], Answer]
    media_type: str
    max_body: int

    def __call__(self, runtime: Any, body: bytes, params: Mapping[str, str]) -> Answer:
        """Run the handler; a `RequestError` becomes its status with ``{"error": message}``."""
        try:
            return self.handler(runtime, body, params)
        except RequestError as exc:
            return exc.status, {"error": str(exc)}
