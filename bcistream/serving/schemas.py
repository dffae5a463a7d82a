"""Typed request and response models of the HTTP API, and the OpenAPI document built from them.

The service answers the JSON routes itself (`bcistream.serving.routes`), so BentoML's generated
document would miss them and type every answer as ``object``. This module is the one description
of every route, body and error status; ``GET /docs.json`` serves `openapi`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

__all__ = [
    "ClassifyRequest",
    "ClassifyResponse",
    "ErrorResponse",
    "FeaturesRequest",
    "FeaturesResponse",
    "FileResponse",
    "FileTrial",
    "ModelInfo",
    "ReadyResponse",
    "VersionConflict",
    "openapi",
]

Trials = list[list[list[float]]]
Trial = list[list[float]]


class ClassifyRequest(BaseModel):
    """Body of ``POST /classify`` (a bare ``n x C x T`` or ``C x T`` array is accepted too)."""

    model_config = ConfigDict(extra="forbid")
    trials: Trials | Trial = Field(description="n_trials x n_channels x n_times (or one n_channels x "
                                   "n_times trial), channels in the model profile's order, n_times >= "
                                   "the window; extra leading samples are filter pre-roll")
    sfreq: float | None = Field(None, description="sampling rate in Hz; refused unless it equals the model's")
    units: str | None = Field(None, description='unit of the samples ("V", "mV", "uV", "nV"); when '
                              "absent the amplitudes must be plausible as volts")


class FeaturesRequest(BaseModel):
    """Body of ``POST /classify_features`` (the live engines' seam)."""

    model_config = ConfigDict(extra="forbid")
    features: list[list[float]] = Field(description="n x n_features feature vectors")
    version: str = Field(description="model version the features were computed with")


class ClassifyResponse(BaseModel):
    """Answer of ``/classify``, ``/classify_npy`` and ``/raw/classify_npy``."""

    labels: list[str] = Field(description="predicted class per trial")
    probabilities: list[list[float]] = Field(description="n_trials x n_classes, columns in `classes` order")
    classes: list[str] = Field(description="class names in the model profile's order")
    preroll: bool = Field(description="whether leading samples served as filter pre-roll")
    preroll_samples: int
    warning: str | None = None
    version: str = Field(description="model version that answered")


class FeaturesResponse(BaseModel):
    """Answer of ``/classify_features``."""

    labels: list[str]
    probabilities: list[list[float]]
    classes: list[str]
    version: str


class FileTrial(BaseModel):
    """One cue-locked prediction of an uploaded recording."""

    cue_index: int
    cue_sample: int
    window_end: int
    true_label: str | None
    label: str
    probabilities: list[float]


class FileResponse(BaseModel):
    """Answer of ``/classify_file``."""

    trials: list[FileTrial]
    excluded: dict[str, str] = Field(description="cue index -> why it has no prediction")
    n_cues: int
    n_trials: int
    n_labelled: int
    accuracy: float | None
    kappa: float | None
    classes: list[str]
    version: str


class ModelInfo(BaseModel):
    """Answer of ``GET /model``."""

    name: str | None
    version: str
    alias: str | None = Field(description="the registry alias this service follows (None: a fixed version)")
    version_aliases: list[str] = Field(description="every registry alias of the served version, as of "
                                                 "the last registry check")
    run_id: str | None
    model_uri: str
    held_versions: list[str]
    profile: dict[str, Any]
    metrics: dict[str, float]
    n_features: int
    classes: list[str]


class ReadyResponse(BaseModel):
    """Answer of ``GET /readyz``."""

    ready: bool
    detail: str
    model_uri: str | None = None
    version: str | None = None
    held_versions: list[str] = []
    registry_reachable: bool | None = None
    last_error: str | None = None
    seconds_since_check: float | None = None
    serving_last_good_model: bool = False
    swaps: int = 0


class ErrorResponse(BaseModel):
    """Every refusal: one line saying what is wrong."""

    error: str


class VersionConflict(ErrorResponse):
    """409 of ``/classify_features``: the features' model version is not held."""

    requested_version: str
    current_version: str


_ERRORS = {
    400: "bad content: shape, channel count, too few samples, NaN/Inf, implausible units, flat trial, "
         "wrong sampling rate, unreadable file, malformed body",
    401: "missing or wrong bearer token (when BCISTREAM_API_TOKEN is set)",
    413: "body larger than the limit (JSON bodies: BCISTREAM_MAX_JSON_MB; others: BCISTREAM_MAX_BODY_MB)",
    415: "wrong Content-Type for this route",
    503: "no model loaded yet (see /readyz)",
}
_UNITS_PARAM = {"name": "units", "in": "query", "required": False, "schema": {"type": "string"},
                "description": 'unit of the samples ("V", "mV", "uV", "nV"); also the X-Units header'}
_NPY = {"type": "string", "format": "binary", "description": "one .npy array (n_trials x n_channels "
        "x n_times, or one n_channels x n_times trial), numeric dtype, no pickled objects"}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(model: type[BaseModel], what: str, errors: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": what,
                                   "content": {"application/json": {"schema": _ref(model)}}}}
    for code in errors:
        schema = _ref(VersionConflict if code == 409 else ErrorResponse)
        text = ("the features' model version is not held; recompute with current_version"
                if code == 409 else _ERRORS[code])
        out[str(code)] = {"description": text, "content": {"application/json": {"schema": schema}}}
    return out


def openapi(version: str, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service.

    Parameters
    ----------
    version : str
        The package version (``info.version``).
    auth : bool
        Whether a bearer token is required (adds the security scheme).
    """
    from bcistream.data.loader import RECORDING_SUFFIXES  # what /classify_file reads (by suffix)

    models = (ClassifyRequest, FeaturesRequest, ClassifyResponse, FeaturesResponse, FileTrial,
              FileResponse, ModelInfo, ReadyResponse, ErrorResponse, VersionConflict)
    _, schema = models_json_schema([(m, "validation") for m in models],
                                   ref_template="#/components/schemas/{model}")
    post_errors = (400, 401, 413, 415, 503)
    bare = {"oneOf": [_ref(ClassifyRequest),
                      {"type": "array", "description": "bare n_trials x n_channels x n_times array",
                       "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
                      {"type": "array", "description": "one n_channels x n_times trial",
                       "items": {"type": "array", "items": {"type": "number"}}}]}
    paths: dict[str, Any] = {
        "/classify": {"post": {
            "summary": "Classify raw trials sent as JSON (small batches)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": bare}}},
            "responses": _answer(ClassifyResponse, "labels and probabilities per trial", post_errors)}},
        "/classify_npy": {"post": {
            "summary": "Classify trials uploaded as one .npy file (multipart field `trials`)",
            "parameters": [_UNITS_PARAM],
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["trials"], "properties": {"trials": _NPY}}}}},
            "responses": _answer(ClassifyResponse, "labels and probabilities per trial", post_errors)}},
        "/raw/classify_npy": {"post": {
            "summary": "Classify trials sent as a .npy body (large batches; no multipart parsing)",
            "parameters": [_UNITS_PARAM],
            "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": _NPY}}},
            "responses": _answer(ClassifyResponse, "labels and probabilities per trial", post_errors)}},
        "/classify_file": {"post": {
            "summary": "Cue-locked predictions for every trial of a recording (GDF/EDF/BDF/FIF/XDF)",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "the recording; its name's suffix picks the reader: "
                                            + ", ".join(RECORDING_SUFFIXES)},
                    "labels": {"type": "string", "format": "binary",
                               "description": "classlabel .mat for cues of unknown class"}}}}}},
            "responses": _answer(FileResponse, "per-trial predictions; accuracy and kappa when labelled",
                                 post_errors)}},
        "/classify_features": {"post": {
            "summary": "Classify feature vectors of one model version (the live engines' seam)",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref(FeaturesRequest)}}},
            "responses": _answer(FeaturesResponse, "labels and probabilities per vector",
                                 (400, 401, 409, 413, 415, 503))}},
        "/model": {"get": {"summary": "The served model: version, alias followed, profile, classes",
                           "responses": _answer(ModelInfo, "the model", (401, 503))}},
        "/readyz": {"get": {"summary": "Readiness with detail",
                            "responses": {"200": {"description": "ready", "content": {
                                "application/json": {"schema": _ref(ReadyResponse)}}},
                                "503": {"description": "no model loaded yet", "content": {
                                    "application/json": {"schema": _ref(ReadyResponse)}}}}}},
        "/livez": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
        "/docs.json": {"get": {"summary": "This document",
                               "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "bcistream", "version": version,
                 "description": "Motor-imagery EEG decoding with the registry's model: raw trials "
                                "(JSON or .npy), whole recordings, and feature batches of live engines. "
                                "Errors are {\"error\": \"<one line>\"} with a 4xx status."},
        "paths": paths,
        "components": {"schemas": schema.get("$defs", {})},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        for p in ("/livez", "/readyz", "/metrics"):
            for op in paths[p].values():
                op["security"] = []
    return doc
