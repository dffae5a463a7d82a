"""Pure ASGI middleware in front of the BentoML app: auth, body size, GET /model and /readyz, timing.

BentoML's API routes are POST-only and its /readyz answers without detail, so the two GET
routes that report the model holder's state are answered here. The holder is reached through
a `Runtime` object the service fills in when it starts.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio

from bcistream.serving.forms import check_form, media_type_problem, parse_form
from bcistream.serving.info import model_info, readiness

__all__ = ["ClientErrorLogFilter", "Guard", "Runtime", "ServiceMetrics", "check_form", "parse_form"]

log = logging.getLogger("bcistream.serving")

#: Paths that never need the token: probes and the Prometheus scrape.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json"})
#: Key of a route's params holding the path the client called (set by the guard after the query
#: string, so a client cannot forge it): every metric of the request is labelled with it.
ROUTE_KEY = ":route"

#: Endpoints whose latency is recorded per endpoint.
TIMED_PATHS = frozenset({"/classify", "/classify_npy", "/raw/classify_npy", "/classify_file",
                         "/classify_features", "/model"})
#: Longest error text sent or logged: an error is one line, never a dump of the input.
MAX_ERROR_CHARS = 400


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` as one line of at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


class ClientErrorLogFilter(logging.Filter):
    """Turns BentoML's ERROR-with-traceback log of a client error (4xx) into one WARNING line.

    BentoML logs every refused request (a pydantic validation error, a 4xx ``BentoMLException``)
    with ``logger.error(..., exc_info=True)``: a full traceback for a caller's typo. Install on
    the ``bentoml._internal.server.http_app`` logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        status = None
        if type(exc).__name__ == "ValidationError":
            status = 400
        else:
            code = getattr(getattr(exc, "error_code", None), "value", None)
            status = code if isinstance(code, int) else None
        if status is None or status >= 500:
            return True
        record.msg = "%s -> %d: %s"
        record.args = (record.getMessage(), status, one_line(str(exc), 200))
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


class ServiceMetrics:
    """Per-endpoint latency and trials-per-request histograms (prometheus_client).

    Created inside the worker, after BentoML has set ``PROMETHEUS_MULTIPROC_DIR``, so the values
    land in the multiprocess files BentoML's /metrics collects (importing prometheus_client
    earlier would latch single-process mode).
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = REGISTRY if registry is None else registry
        self.latency = Histogram(
            "bcistream_request_seconds", "Request latency per endpoint, body read to response sent",
            ["endpoint", "status"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=registry,
        )
        self.trials = Histogram(
            "bcistream_trials_per_request", "Trials (or feature vectors) per classification request",
            ["endpoint"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=registry,
        )
        self.swaps = Counter("bcistream_model_swaps", "Model versions swapped in after start",
                             registry=registry)
        self.refused = Counter("bcistream_version_refused", "Feature batches refused for their version",
                               registry=registry)


@dataclass
class Runtime:
    """What the middleware needs from the running service (filled in by the service's __init__)."""

    holder: Any = None
    metrics: ServiceMetrics | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def _send_json(send, status: int, payload: dict[str, Any], headers: list | None = None) -> None:
    if status >= 400 and isinstance(payload.get("error"), str):
        payload = {**payload, "error": one_line(payload["error"])}
    body = json.dumps(payload, allow_nan=False).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _error_text(body: bytes) -> str:
    """The error of an app's 4xx body (BentoML sends objects, lists of objects or text)."""
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace") or "refused"
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    return str(value)


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
        ``multipart/form-data``); others get 415, as does a body without Content-Type on a
        non-JSON path (see `bcistream.serving.forms.media_type_problem`). BentoML would otherwise
        try to read a form sent to a JSON endpoint and fail with a 500 on non-UTF-8 fields.
    file_fields : dict, optional
        Multipart path -> its file fields. Every part must be one of them AND carry a file name:
        BentoML treats a plain-text value of a file field as a URL and downloads it (a 500 for a
        non-URL, a server-side fetch for a URL), and fails with a 500 on a non-UTF-8 value of any
        other field, so such forms get 400 here.
    required_fields : dict, optional
        Multipart path -> the file fields it cannot do without (400 when one is missing; BentoML
        left such a request hanging until the client gave up).
    form_checks : dict, optional
        Multipart path -> ``check(parts) -> problem or None`` on the parsed parts
        (``{field: (file name, bytes)}``): here the names are the client's own, while BentoML
        hands the service temporary files.
    routes : dict, optional
        POST path -> `bcistream.serving.routes.Route` answered here (in a worker thread), not by
        BentoML; each has its own media type and body limit.
    openapi : callable, optional
        ``openapi() -> dict``, served at ``GET /docs.json`` in place of BentoML's document.

    Every 4xx answer (the guard's, the routes', BentoML's) is ``{"error": "<one line>"}`` and is
    logged once at WARNING, without a traceback.
    """

    def __init__(self, app, runtime: Runtime, token: str | None = None, max_body: int = 256 << 20,
                 media_types: dict[str, str] | None = None,
                 file_fields: dict[str, frozenset[str] | set[str]] | None = None,
                 routes: dict[str, Any] | None = None, openapi: Any = None,
                 required_fields: dict[str, frozenset[str] | set[str]] | None = None,
                 form_checks: dict[str, Any] | None = None) -> None:
        self.app = app
        self.runtime = runtime
        self.token = token.encode() if token else None
        self.max_body = int(max_body)
        self.media_types = dict(media_types or {})
        self.file_fields = {k: frozenset(v) for k, v in (file_fields or {}).items()}
        self.required_fields = {k: frozenset(v) for k, v in (required_fields or {}).items()}
        self.form_checks = dict(form_checks or {})
        self.routes = dict(routes or {})
        for path, route in self.routes.items():
            self.media_types.setdefault(path, route.media_type)
        self.openapi = openapi
        self._openapi_body: bytes | None = None

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
            await self._refuse(send, method, path, 401,
                               "missing or wrong bearer token (Authorization: Bearer <token>)",
                               [(b"www-authenticate", b"Bearer")])
            return
        if method == "GET" and path == "/docs.json" and self.openapi is not None:
            if self._openapi_body is None:
                self._openapi_body = json.dumps(self.openapi()).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._openapi_body)).encode())]})
            await send({"type": "http.response.body", "body": self._openapi_body})
            return
        if method == "GET" and path == "/readyz":
            await self._readyz(send)
            return
        if method == "GET" and path == "/model":
            await self._model(send)
            return
        expected = self.media_types.get(path) if method == "POST" else None
        problem = None if expected is None else media_type_problem(path, expected, headers)
        if problem is not None:
            await self._refuse(send, method, path, 415, problem)
            return
        route = self.routes.get(path) if method == "POST" else None
        limit = route.max_body if route is not None else self.max_body
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                await self._refuse(send, method, path, 400, "Content-Length is not a number")
                return
            if too_big:
                await self._refuse(send, method, path, 413, self._too_large(path, limit, int(length)))
                return
        if route is not None:
            await self._answer(scope, receive, send, path, route, headers)
            return
        if method == "POST" and path in self.file_fields:
            await self._forward_form(scope, receive, send, path, headers)
            return
        await self._forward(scope, receive, send, path)

    async def _forward_form(self, scope, receive, send, path: str, headers: dict[bytes, bytes]) -> None:
        """Read the whole (size-limited) form, check its parts, then hand the same bytes to the app."""
        raw = await self._read_body(receive, send, path, self.max_body)
        if raw is None:
            return
        body = bytes(raw)
        del raw
        problem, parts = parse_form(body, headers.get(b"content-type", b""), self.file_fields[path],
                                    self.required_fields.get(path, frozenset()))
        if problem is None and path in self.form_checks:
            problem = self.form_checks[path](parts)
        del parts
        if problem is not None:
            await self._refuse(send, "POST", path, 400, f"{path}: {problem}")
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._forward(scope, replay, send, path)

    @staticmethod
    def _too_large(path: str, limit: int, length: int | None = None) -> str:
        size = "" if length is None else f" of {length} bytes"
        hint = ("; send large batches as a .npy body to /raw/classify_npy" if path in
                ("/classify", "/classify_features") else "")
        return f"request body{size} exceeds the limit of {limit} bytes for {path}{hint}"

    async def _refuse(self, send, method: str, path: str, status: int, error: str,
                      headers: list | None = None, extra: dict[str, Any] | None = None) -> None:
        error = one_line(error)
        log.warning("%s %s -> %d: %s", method, path, status, error)
        await _send_json(send, status, {"error": error, **(extra or {})}, headers)

    async def _read_body(self, receive, send, path: str, limit: int) -> bytearray | None:
        """The whole body (at most ``limit`` bytes; else a 413 is sent and None returned).

        Returned as the buffer it was read into (no final copy): one body in memory per request.
        """
        buf = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # client went away
            buf += message.get("body", b"")
            if len(buf) > limit:
                await self._refuse(send, "POST", path, 413, self._too_large(path, limit))
                return None
            if not message.get("more_body", False):
                return buf

    async def _answer(self, scope, receive, send, path: str, route: Any, headers: dict[bytes, bytes]) -> None:
        """Answer a route of ours: read the capped body, run the handler in a thread, send JSON."""
        t0 = time.perf_counter()
        body = await self._read_body(receive, send, path, route.max_body)
        status = 413
        if body is not None:
            params = {k.lower(): v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))}
            if b"x-units" in headers:
                params.setdefault("x-units", headers[b"x-units"].decode("latin-1"))
            params["content-type"] = headers.get(b"content-type", b"").decode("latin-1")
            params[ROUTE_KEY] = path  # the handler labels its trials metric as latency is below
            status, payload = await anyio.to_thread.run_sync(route, self.runtime, body, params)
            del body
            if status >= 400:
                await self._refuse(send, "POST", path, status, payload.pop("error", "refused"), extra=payload)
            else:
                await _send_json(send, status, payload)
        metrics = self.runtime.metrics
        if metrics is not None and path in TIMED_PATHS:
            metrics.latency.labels(endpoint=path, status=str(status)).observe(time.perf_counter() - t0)

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

        error_body = bytearray()

        async def guarded_send(message):
            nonlocal started
            if over:
                return  # the 413 below replaces whatever the app makes of the aborted read
            if message["type"] == "http.response.start":
                started = True
                status_box[0] = int(message["status"])
                if 400 <= status_box[0] < 500:
                    return  # re-sent below as one short line
            elif 400 <= status_box[0] < 500 and message["type"] == "http.response.body":
                if len(error_body) < 65536:
                    error_body.extend(message.get("body", b"")[:65536])
                if not message.get("more_body", False):
                    await self._refuse(send, scope.get("method", "POST"), path, status_box[0],
                                       _error_text(bytes(error_body)))
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            pass
        if over and not started:
            status_box[0] = 413
            await self._refuse(send, scope.get("method", "POST"), path, 413,
                               self._too_large(path, self.max_body))
        metrics = self.runtime.metrics
        if metrics is not None and path in TIMED_PATHS:
            metrics.latency.labels(endpoint=path, status=str(status_box[0])).observe(time.perf_counter() - t0)

    async def _readyz(self, send) -> None:
        status, payload = readiness(self.runtime.holder)
        await _send_json(send, status, payload)

    async def _model(self, send) -> None:
        t0 = time.perf_counter()
        status, payload = model_info(self.runtime.holder)
        await _send_json(send, status, payload)
        if status == 200 and self.runtime.metrics is not None:
            elapsed = time.perf_counter() - t0
            self.runtime.metrics.latency.labels(endpoint="/model", status="200").observe(elapsed)
