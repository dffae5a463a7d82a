"""The BentoML service: HTTP and batch classification with the registry champion.

Run with ``bcistream serve`` (or ``bentoml serve bcistream.serving.service:BcistreamService``).
Configuration comes from the environment (`ServingConfig`); the model is the registry alias's
current version, polled and swapped in by a `ModelHolder`. Errors a caller can cause are JSON
``{"error": "..."}`` with a 4xx status; the decoding itself lives in `bcistream.serving.compute`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
from starlette.responses import JSONResponse

from bcistream import __version__
from bcistream.serving.compute import (
    RequestError,
    classify_recording,
    recording_suffix,
)
from bcistream.serving.config import ServingConfig
from bcistream.serving.guard import ClientErrorLogFilter, Guard, Runtime, ServiceMetrics
from bcistream.serving.holder import ModelHolder
from bcistream.serving.routes import Route, classify_form_npy, classify_json, classify_raw_npy, features_json
from bcistream.serving.schemas import openapi
from bcistream.serving.upstream import install as install_timer_fix

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
    """Classifies raw trials, whole recordings and CSP feature batches with the champion model."""

    def __init__(self) -> None:
        self.metrics = ServiceMetrics()
        self.holder = ModelHolder(CONFIG.resolved_model_uri(), CONFIG.resolved_tracking_uri(),
                                  poll_interval=CONFIG.poll_s)
        RUNTIME.metrics = self.metrics
        RUNTIME.holder = self.holder
        self.holder.on_swap = self.metrics.swaps.inc
        self.holder.start()

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.holder.stop()

    # -- raw trials ------------------------------------------------------------------------
    # POST /classify, /classify_features (JSON), /classify_npy and /raw/classify_npy are answered
    # by `bcistream.serving.routes` in front of BentoML (bare arrays, one parse of a capped body,
    # .npy sizes checked before allocating, one-line errors).
    # -- whole recordings ------------------------------------------------------------------
    @bentoml.api
    def classify_file(self, file: Path, labels: list[Path] = []) -> dict[str, Any]:  # noqa: B006
        """Cue-locked predictions for every trial of an uploaded recording (GDF/EDF/BDF/FIF/XDF).

        ``labels`` optionally uploads a ``classlabel`` .mat file for cues of unknown class (a list
        because BentoML 1.4 cannot validate an optional file field).
        Accuracy and kappa are reported over the trials whose class is known.
        """
        model = self.holder.current
        if model is None:
            return _no_model()
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


def _recording_name_problem(parts: dict) -> str | None:
    """The uploaded recording's own file name must end in a recording suffix (see `Guard`)."""
    try:
        recording_suffix(parts["file"][0])
    except RequestError as exc:
        return str(exc)
    return None


_TOKEN = CONFIG.api_token or os.environ.get("BCISTREAM_API_TOKEN") or None
BcistreamService.add_asgi_middleware(
    Guard, runtime=RUNTIME, token=_TOKEN, max_body=CONFIG.max_body_bytes,
    media_types={"/classify_file": "multipart/form-data"},
    file_fields={"/classify_file": {"file", "labels"}},
    required_fields={"/classify_file": {"file"}},
    form_checks={"/classify_file": _recording_name_problem},
    routes={
        "/classify": Route(classify_json, "application/json", CONFIG.max_json_bytes),
        "/classify_features": Route(features_json, "application/json", CONFIG.max_json_bytes),
        "/raw/classify_npy": Route(classify_raw_npy, "application/octet-stream", CONFIG.max_body_bytes),
        "/classify_npy": Route(classify_form_npy, "multipart/form-data", CONFIG.max_body_bytes),
    },
    openapi=lambda: openapi(__version__, auth=_TOKEN is not None),
)
# BentoML 1.4 keeps every request's context alive until its timeout timer fires (+5 kB/request).
install_timer_fix()
# BentoML logs a refused request at ERROR with a traceback; one WARNING line says enough.
logging.getLogger("bentoml._internal.server.http_app").addFilter(ClientErrorLogFilter())
# While the registry is down the holder polls it every second and logs the outage once; urllib3
# would add a WARNING for every retry of every poll.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
