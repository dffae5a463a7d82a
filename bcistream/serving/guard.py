"""Pure ASGI middleware in front of the BentoML app: auth, body size, GET /model and /readyz, timing.

BentoML's API routes are POST-only and its /readyz answers without detail, so the two GET
routes that report the model holder's state are answered here. The holder is reached through
a `Runtime` object the service fills in when it starts.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Guard", "Runtime", "ServiceMetrics", "check_form"]

#: Paths that never need the token: probes and the Prometheus scrape.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
#: Endpoints whose latency is recorded per endpoint.
TIMED_PATHS = frozenset({"/classify", "/classify_npy", "/raw/classify_npy", "/classify_file",
                         "/classify_features", "/model"})


class ServiceMetrics:
    """Per-endpoint latency and trials-per-request histograms (prometheus_client).

    Created inside the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``, so the values
    land in the multiprocess files BentoML's /metrics collects (importing prometheus_client
    earlier would latch single-process mode).
    """

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.latency = Histogram(
            "bcistream_request_seconds", "Request latency per endpoint, body read to response sent",
            ["endpoint", "status"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
        )
        self.trials = Histogram(
            "bcistream_trials_per_request", "Trials (or feature vectors) per classification request",
            ["endpoint"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
        )
        self.swaps = Counter("bcistream_model_swaps", "Model versions swapped in after start")
        self.refused = Counter("bcistream_version_refused", "Feature batches refused for their version")


@dataclass
class Runtime:
    """What the middleware needs from the running service (filled in by the service's __init__)."""

    holder: Any = None
    metrics: ServiceMetrics | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def _send_json(send, status: int, payload: dict[str, Any], headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'[\s;]name="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb'[\s;]filename\*?=', re.IGNORECASE)


def _decoder_fields(pipe: Any) -> dict[str, Any]:
    """What the engine and clients need of the held model's decoder: name, n_features, classes."""
    from bcistream.serving.compute import decoder_of

    dec = decoder_of(pipe)
    return {"decoder": dec.name, "n_features": int(dec.n_features),
            "classes": [str(c) for c in dec.classes]}


def check_form(body: bytes, content_type: bytes, file_fields: frozenset[str]) -> str | None:
    """Why a multipart body is refused, or None.

    Refused: a part that is not one of ``file_fields``, or one without a file name.
    """
    m = _BOUNDARY.search(content_type)
    if m is None:
        return "multipart/form-data without a boundary"
    delim = b"--" + m.group(1)
    pos = body.find(delim)
    n_parts = 0
    while pos >= 0:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            return "malformed multipart body"
        head = body[pos:head_end]
        name = _NAME.search(head)
        field = name.group(1).decode("utf-8", "replace") if name else ""
        if field not in file_fields:
            return f"unknown form field {field!r}; expected file upload(s) {', '.join(sorted(file_fields))}"
        if not _FILENAME.search(head):
            return f"form field {field!r} must be a file upload (with a file name), not a text value"
        n_parts += 1
        nxt = body.find(b"\r\n" + delim, head_end)
        pos = -1 if nxt < 0 else nxt + 2
    return None if n_parts else f"no file uploaded; expected {', '.join(sorted(file_fields))}"


class Guard:
    """ASGI middleware: bearer-token auth, request body limit, model/readiness routes, timing.

    Parameters
    ----------
    app : ASGI app
    runtime : Runtime
    token : str or None
        Required bearer token; ``None`` disables auth.
    max_body : int
        Largest body in bytes; larger ones get 413 (by Content-Length, or while streaming).
    media_types : dict, optional
        Path -> the one media type its POST body may have (``application/json`` or
        ``multipart/form-data``); others get 415. BentoML would otherwise try to read a form
        sent to a JSON endpoint and fail with a 500 on non-UTF-8 fields.
    file_fields : dict, optional
        Multipart path -> its file fields. Every part must be one of them AND carry a file name:
        BentoML treats a plain-text value of a file field as a URL and downloads it (a 500 for a
        non-URL, a server-side fetch for a URL), and fails with a 500 on a non-UTF-8 value of any
        other field, so such forms get 400 here.
    """

    def __init__(self, app, runtime: Runtime, token: str | None = None, max_body: int = 256 << 20,
                 media_types: dict[str, str] | None = None,
                 file_fields: dict[str, frozenset[str] | set[str]] | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self.token = token.encode() if token else None
        self.max_body = int(max_body)
        self.media_types = dict(media_types or {})
        self.file_fields = {k: frozenset(v) for k, v in (file_fields or {}).items()}

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        if self.token is None:
            return True
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        headers = dict(scope.get("headers") or [])
        if path not in OPEN_PATHS and not self._authorized(headers):
            await _send_json(send, 401,
                             {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                             [(b"www-authenticate", b"Bearer")])
            return
        if method == "GET" and path == "/readyz":
            await self._readyz(send)
            return
        if method == "GET" and path == "/model":
            await self._model(send)
            return
        expected = self.media_types.get(path) if method == "POST" else None
        if expected is not None:
            given = headers.get(b"content-type", b"application/json").split(b";")[0].strip().decode("latin-1")
            if given.lower() != expected:
                await _send_json(send, 415, {"error": f"{path} takes {expected}, got Content-Type {given!r}"})
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                await _send_json(send, 400, {"error": "Content-Length is not a number"})
                return
            if too_big:
                await _send_json(send, 413, {"error": f"request body of {int(length)} bytes exceeds the "
                                             f"limit of {self.max_body} bytes"})
                return
        if method == "POST" and path in self.file_fields:
            await self._forward_form(scope, receive, send, path, headers)
            return
        await self._forward(scope, receive, send, path)

    async def _forward_form(self, scope, receive, send, path: str, headers: dict[bytes, bytes]) -> None:
        """Read the whole (size-limited) form, check its parts, then hand the same bytes to the app."""
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await _send_json(send, 413,
                                 {"error": f"request body exceeds the limit of {self.max_body} bytes"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = check_form(body, headers.get(b"content-type", b""), self.file_fields[path])
        if problem is not None:
            await _send_json(send, 400, {"error": f"{path}: {problem}"})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._forward(scope, replay, send, path)

    async def _forward(self, scope, receive, send, path: str) -> None:
        seen = 0
        over = False
        started = False
        status_box = [500]
        t0 = time.perf_counter()

        async def counting_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message):
            nonlocal started
            if over:
                return  # the 413 below replaces whatever the app makes of the aborted read
            if message["type"] == "http.response.start":
                started = True
                status_box[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if over and not started:
            status_box[0] = 413
            await _send_json(send, 413, {"error": f"request body exceeds the limit of {self.max_body} bytes"})
        metrics = self.runtime.metrics
        if metrics is not None and path in TIMED_PATHS:
            metrics.latency.labels(endpoint=path, status=str(status_box[0])).observe(time.perf_counter() - t0)

    async def _readyz(self, send) -> None:
        holder = self.runtime.holder
        if holder is None:
            await _send_json(send, 503, {"ready": False, "detail": "service is starting"})
            return
        status = holder.status()
        if status["ready"]:
            status["detail"] = ("serving the last good model: the registry is unreachable"
                                if status["serving_last_good_model"] else "serving")
        else:
            why = f" ({status['last_error']})" if status["last_error"] else ""
            status["detail"] = "no model loaded yet" + why
        await _send_json(send, 200 if status["ready"] else 503, status)

    async def _model(self, send) -> None:
        t0 = time.perf_counter()
        holder = self.runtime.holder
        model = None if holder is None else holder.current
        if model is None:
            await _send_json(send, 503, {"error": "no model loaded yet"})
            return
        from bcistream.pipeline import pipeline_profile

        prof = pipeline_profile(model.pipeline)
        payload = {
            "name": getattr(model, "name", None),
            "version": str(model.version),
            "alias": getattr(model, "alias", None) or holder.uri.alias,
            "run_id": getattr(model, "run_id", None),
            "model_uri": holder.model_uri,
            "held_versions": holder.versions,
            "profile": prof.to_dict(),
            "metrics": dict(getattr(model, "metrics", None) or {}),
            **_decoder_fields(model.pipeline),
        }
        await _send_json(send, 200, payload)
        if self.runtime.metrics is not None:
            elapsed = time.perf_counter() - t0
            self.runtime.metrics.latency.labels(endpoint="/model", status="200").observe(elapsed)
