"""A typed Python client of the service, and the engine's remote classifier over /classify_features."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bcistream.errors import BcistreamError
from bcistream.realtime.protocols import UnknownVersionError

__all__ = ["Client", "FilePrediction", "Prediction", "RemoteClassifier", "ServingError"]


class ServingError(BcistreamError):
    """The service refused a request (4xx/5xx) or could not be reached; ``status`` is 0 when unreachable."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Prediction:
    """Answer of /classify, /classify_npy and /classify_features.

    Attributes
    ----------
    labels : ndarray of str, shape (n,)
    probabilities : ndarray, shape (n, n_classes)
        Columns in ``classes`` order.
    classes : list of str
    version : str
        Model version that answered.
    preroll : bool or None
        Raw trials only: whether leading samples served as filter pre-roll.
    warning : str or None
    """

    labels: np.ndarray
    probabilities: np.ndarray
    classes: list[str]
    version: str
    preroll: bool | None = None
    warning: str | None = None


@dataclass(frozen=True)
class FilePrediction:
    """Answer of /classify_file: per-trial predictions of a recording and, when labelled, scores."""

    trials: list[dict[str, Any]]
    classes: list[str]
    version: str
    accuracy: float | None
    kappa: float | None
    n_cues: int
    excluded: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Predicted class per usable trial, in cue order."""
        return [t["label"] for t in self.trials]


def _prediction(body: dict[str, Any]) -> Prediction:
    return Prediction(labels=np.asarray(body["labels"], dtype=object),
                      probabilities=np.asarray(body["probabilities"], dtype=np.float64),
                      classes=list(body["classes"]), version=str(body["version"]),
                      preroll=body.get("preroll"), warning=body.get("warning"))


class Client:
    """Talks to a running bcistream service.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:3000``.
    token : str, optional
        Bearer token when the service requires one.
    timeout : float
        Seconds per request.

    Examples
    --------
    >>> with Client("http://127.0.0.1:3000") as c:          # doctest: +SKIP
    ...     pred = c.classify(trials)                        # (n, 22, 1000) volts
    ...     pred.labels, pred.version
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServingError(f"{self.url}{path}: service unreachable "
                               f"({type(exc).__name__}: {exc})") from None
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:200]}
        if resp.status_code >= 400:
            if isinstance(body, list) and body:  # BentoML wraps some errors in a list
                body = body[0]
            msg = body.get("error", resp.text[:200]) if isinstance(body, dict) else str(body)
            err = ServingError(f"{self.url}{path}: HTTP {resp.status_code}: {msg}", resp.status_code)
            err.body = body  # type: ignore[attr-defined]
            raise err
        return body

    def classify(self, trials: np.ndarray, sfreq: float | None = None,
                 units: str | None = None) -> Prediction:
        """Classify raw trials (n, n_channels, n_times) sent as JSON (small batches).

        ``units`` declares the samples' unit (``"uV"``, ``"V"`` ...); undeclared samples must be
        plausible as volts.
        """
        payload: dict[str, Any] = {"trials": np.asarray(trials, dtype=np.float64).tolist()}
        if sfreq is not None:
            payload["sfreq"] = float(sfreq)
        if units is not None:
            payload["units"] = str(units)
        return _prediction(self._request("POST", "/classify", json=payload))

    def classify_npy(self, trials: np.ndarray, units: str | None = None) -> Prediction:
        """Classify raw trials uploaded as one ``.npy`` file (large batches; float32 halves the bytes)."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(trials), allow_pickle=False)
        return _prediction(self._request("POST", "/raw/classify_npy", content=buf.getvalue(),
                                         params={"units": units} if units else None,
                                         headers={"content-type": "application/octet-stream"}))

    def classify_file(self, path: str | Path, labels: str | Path | None = None) -> FilePrediction:
        """Upload a recording; cue-locked predictions per trial, with accuracy/kappa when labelled."""
        path = Path(path)
        if not path.is_file():
            raise BcistreamError(f"{path}: no such file")
        files = [("file", (path.name, path.read_bytes(), "application/octet-stream"))]
        if labels is not None:
            lab = Path(labels)
            files.append(("labels", (lab.name, lab.read_bytes(), "application/octet-stream")))
        body = self._request("POST", "/classify_file", files=files)
        return FilePrediction(trials=body["trials"], classes=body["classes"], version=str(body["version"]),
                              accuracy=body.get("accuracy"), kappa=body.get("kappa"),
                              n_cues=int(body.get("n_cues", 0)), excluded=body.get("excluded") or {})

    def classify_features(self, features: np.ndarray, version: str) -> Prediction:
        """Classify feature vectors (n, n_features) computed with model ``version``.

        Raises
        ------
        UnknownVersionError
            The service does not hold ``version`` (409); ``current`` names the one it serves.
        """
        payload = {"features": np.asarray(features, dtype=np.float64).tolist(), "version": str(version)}
        try:
            return _prediction(self._request("POST", "/classify_features", json=payload))
        except ServingError as exc:
            if exc.status == 409:
                body = getattr(exc, "body", {}) or {}
                raise UnknownVersionError(str(version), body.get("current_version")) from None
            raise

    def model(self) -> dict[str, Any]:
        """GET /model: version, alias, profile, training metrics."""
        return self._request("GET", "/model")

    def ready(self) -> dict[str, Any]:
        """GET /readyz detail (raises `ServingError` with status 503 when not ready)."""
        return self._request("GET", "/readyz")


class RemoteClassifier:
    """`bcistream.realtime.protocols.Classifier` over the service's /classify_features.

    Parameters
    ----------
    url_or_client : str or Client
    token : str, optional
        Bearer token (when ``url_or_client`` is a URL).
    """

    def __init__(self, url_or_client: str | Client, token: str | None = None, timeout: float = 10.0) -> None:
        self.client = url_or_client if isinstance(url_or_client, Client) else Client(
            url_or_client, token=token, timeout=timeout)

    def classify(self, features: np.ndarray, version: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities for ``features`` (n, k) of model ``version``.

        Raises
        ------
        UnknownVersionError
            The service does not hold ``version``.
        """
        pred = self.client.classify_features(features, version)
        return np.asarray(pred.labels, dtype=object), pred.probabilities

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()
