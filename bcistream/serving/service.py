"""The BentoML service: HTTP and batch classification with the registry champion.

Run with ``bcistream serve`` (or ``bentoml serve bcistream.serving.service:BcistreamService``).
Configuration comes from the environment (`ServingConfig`); the model is the registry alias's
current version, polled and swapped in by a `ModelHolder`. Errors a caller can cause are JSON
``{"error": "..."}`` with a 4xx status; the decoding itself lives in `bcistream.serving.compute`.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio
import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bcistream.pipeline import pipeline_profile
from bcistream.serving.compute import (
    RequestError,
    check_features,
    check_trials,
    classify_features,
    classify_recording,
    classify_trials,
    decoder_of,
    read_npy,
    recording_suffix,
)
from bcistream.serving.config import ServingConfig
from bcistream.serving.guard import Guard, Runtime, ServiceMetrics
from bcistream.serving.holder import ModelHolder

__all__ = ["BcistreamService"]

log = logging.getLogger(__name__)

CONFIG = ServingConfig()
#: Shared between the service instance and the ASGI guard of the same worker process.
RUNTIME = Runtime()


def _error(exc: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _no_model() -> JSONResponse:
    return JSONResponse({"error": "no model loaded yet (see /readyz)"}, status_code=503)


@bentoml.service(
    name="bcistream",
    workers=CONFIG.serve_workers,
    traffic={"timeout": 300},
    logging={"access": {"enabled": CONFIG.access_log}},
)
class BcistreamService:
    """Classifies raw trials, whole recordings and feature batches with the champion model."""

    def __init__(self) -> None:
        self.metrics = ServiceMetrics()
        self.holder = ModelHolder(CONFIG.resolved_model_uri(), CONFIG.resolved_tracking_uri(),
                                  poll_interval=CONFIG.poll_s)
        RUNTIME.metrics = self.metrics
        RUNTIME.holder = self.holder
        swaps_before = 0

        def count_swaps() -> None:
            nonlocal swaps_before
            if self.holder.swaps > swaps_before:
                self.metrics.swaps.inc(self.holder.swaps - swaps_before)
                swaps_before = self.holder.swaps

        self._count_swaps = count_swaps
        self.holder.start()

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.holder.stop()

    # -- raw trials ------------------------------------------------------------------------
    def _classify_array(self, trials: Any, sfreq: float | None,
                        endpoint: str) -> dict[str, Any] | JSONResponse:
        model = self.holder.current
        if model is None:
            return _no_model()
        self._count_swaps()
        try:
            X = check_trials(trials, pipeline_profile(model.pipeline), sfreq)
        except RequestError as exc:
            return _error(exc)
        self.metrics.trials.labels(endpoint=endpoint).observe(len(X))
        out = classify_trials(model.pipeline, X)
        out["version"] = str(model.version)
        return out

    @bentoml.api
    def classify(self, trials: list[list[list[float]]], sfreq: float | None = None) -> dict[str, Any]:
        """Classify raw trials (n_trials x n_channels x n_times, volts, profile channel order).

        ``n_times`` >= the model's window; leading extra samples are pre-roll for the causal
        filter. Returns labels, per-class probabilities, the model version and the pre-roll flag.
        """
        return self._classify_array(trials, sfreq, "/classify")

    @bentoml.api
    def classify_npy(self, trials: Path) -> dict[str, Any]:
        """Like /classify, with the trials uploaded as one ``.npy`` file (multipart field ``trials``).

        The file is read with the .npy reader only; pickled (object) arrays are refused. (No
        ``sfreq`` field: BentoML fails with a 500 on a non-UTF-8 value in a form's text field.)
        ``POST /raw/classify_npy`` takes the same file as the raw body, without multipart parsing
        and temp files (faster for big batches).
        """
        try:
            with open(trials, "rb") as f:
                arr = read_npy(f)
        except RequestError as exc:
            return _error(exc)
        return self._classify_array(arr, None, "/classify_npy")

    # -- whole recordings ------------------------------------------------------------------
    @bentoml.api
    def classify_file(self, file: Path, labels: list[Path] = []) -> dict[str, Any]:  # noqa: B006
        """Cue-locked predictions for every trial of an uploaded recording (GDF/EDF/BDF/FIF).

        ``labels`` optionally uploads a ``classlabel`` .mat file for cues of unknown class (a list
        because BentoML 1.4 cannot validate an optional file field).
        Accuracy and kappa are reported over the trials whose class is known.
        """
        model = self.holder.current
        if model is None:
            return _no_model()
        self._count_swaps()
        try:
            suffix = recording_suffix(Path(file).name)
        except RequestError as exc:
            return _error(exc)
        # MNE picks its reader by suffix, and a 2a E file would look for labels beside it:
        # a private folder with a neutral name avoids both surprises.
        with tempfile.TemporaryDirectory(prefix="bcistream-upload-") as tmp:
            rec_path = Path(tmp) / f"upload{suffix}"
            shutil.copyfile(file, rec_path)
            lab_path = None
            if len(labels) > 1:
                return _error(RequestError(f"labels: send at most one .mat file, got {len(labels)}"))
            if labels:
                lab_path = Path(tmp) / "labels.mat"
                shutil.copyfile(labels[0], lab_path)
            try:
                out = classify_recording(model.pipeline, rec_path, lab_path)
            except RequestError as exc:
                return _error(exc)
        self.metrics.trials.labels(endpoint="/classify_file").observe(out["n_trials"])
        out["version"] = str(model.version)
        return out

    # -- the live engines' seam --------------------------------------------------------------
    @bentoml.api
    async def classify_features(self, features: list[list[float]], version: str) -> dict[str, Any]:
        """Classify feature vectors (n x n_features) computed with model ``version``.

        Answers 409 when the service does not hold that version (it keeps the previous one
        across a swap), naming the version it serves now in ``current_version``.
        """
        model = self.holder.get(version)
        if model is None:
            cur = self.holder.current
            if cur is None:
                return _no_model()
            self.metrics.refused.inc()
            return JSONResponse({"error": f"model version {version!r} is not held (held: "
                                 f"{', '.join(self.holder.versions)}); features must be recomputed "
                                 f"with version {cur.version}",
                                 "requested_version": str(version), "current_version": str(cur.version)},
                                status_code=409)
        self._count_swaps()
        try:
            F = check_features(features, decoder_of(model.pipeline).n_features)
        except RequestError as exc:
            return _error(exc)
        self.metrics.trials.labels(endpoint="/classify_features").observe(len(F))
        out = classify_features(model.pipeline, F)
        out["version"] = str(model.version)
        return out


def _raw_app() -> Starlette:
    """``POST /raw/classify_npy``: a .npy file as the request body (``application/octet-stream``)."""

    async def classify_npy(request: Request) -> JSONResponse:
        holder = RUNTIME.holder
        model = None if holder is None else holder.current
        if model is None:
            return _no_model()
        body = await request.body()

        def work() -> dict[str, Any]:
            X = check_trials(read_npy(io.BytesIO(body)), pipeline_profile(model.pipeline))
            RUNTIME.metrics.trials.labels(endpoint="/raw/classify_npy").observe(len(X))
            out = classify_trials(model.pipeline, X)
            out["version"] = str(model.version)
            return out

        try:
            return JSONResponse(await anyio.to_thread.run_sync(work))
        except RequestError as exc:
            return _error(exc)

    return Starlette(routes=[Route("/classify_npy", classify_npy, methods=["POST"])])


BcistreamService.mount_asgi_app(_raw_app(), path="/raw")
BcistreamService.add_asgi_middleware(
    Guard, runtime=RUNTIME, token=CONFIG.api_token or os.environ.get("BCISTREAM_API_TOKEN") or None,
    max_body=CONFIG.max_body_bytes,
    media_types={"/classify": "application/json", "/classify_features": "application/json",
                 "/classify_npy": "multipart/form-data", "/classify_file": "multipart/form-data",
                 "/raw/classify_npy": "application/octet-stream"},
    file_fields={"/classify_npy": {"trials"}, "/classify_file": {"file", "labels"}},
)
