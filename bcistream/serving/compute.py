"""What the service computes, without HTTP: checks of user input and decoding with one fitted model.

Every check raises `RequestError` with a message that names the problem and the status it maps
to (400 for bad content, 409 for a model version the service does not hold). The service only
translates these into responses, so the rules are tested without a server.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.pipeline import Pipeline

from bcistream.data.loader import RECORDING_SUFFIXES, load_recording
from bcistream.data.profiles import Profile
from bcistream.decoders import StreamingDecoder, compile_streaming
from bcistream.errors import BcistreamError
from bcistream.pipeline import decode_filtered, epochs_from_recording, pipeline_profile

__all__ = [
    "RequestError",
    "check_features",
    "check_trials",
    "classify_features",
    "classify_recording",
    "classify_trials",
    "read_npy",
    "recording_suffix",
]


class RequestError(BcistreamError):
    """A request the service refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise RequestError(f"{what} contains NaN or Inf (first at index {bad})")


def check_trials(trials: Any, profile: Profile, sfreq: float | None = None) -> np.ndarray:
    """Validate raw trials against the model's profile.

    Parameters
    ----------
    trials : array-like, shape (n_trials, n_channels, n_times)
        Volts, channels in profile order; ``n_times >= profile.window_samples``.
    profile : Profile
        The profile the model was trained with.
    sfreq : float, optional
        The sampling rate the caller recorded at; refused when it differs from the profile's.

    Returns
    -------
    ndarray of float64

    Raises
    ------
    RequestError
        Empty batch, wrong number of dimensions, channels or samples, NaN/Inf, wrong rate.
    """
    if sfreq is not None and abs(float(sfreq) - profile.sfreq) > 1e-6:
        raise RequestError(f"sfreq is {float(sfreq):g} Hz but the model expects {profile.sfreq:g} Hz")
    try:
        X = np.asarray(trials, dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError("trials must be a numeric array of shape (n_trials, n_channels, n_times)"
                           " with equal lengths in every dimension") from None
    if X.size == 0 and X.ndim <= 1:
        raise RequestError("trials is an empty batch: send at least one trial")
    if X.ndim != 3:
        raise RequestError(f"trials must have shape (n_trials, n_channels, n_times), got {X.ndim} "
                           f"dimensions {X.shape}")
    n, c, t = X.shape
    if n == 0:
        raise RequestError("trials is an empty batch: send at least one trial")
    if c != profile.n_channels:
        raise RequestError(f"trials have {c} channels, the model expects {profile.n_channels} "
                           f"({', '.join(profile.channels[:3])}, ... in profile '{profile.name}' order)")
    if t < profile.window_samples:
        raise RequestError(f"trials have {t} samples, the model needs at least {profile.window_samples} "
                           f"(one {profile.window_s:g} s window at {profile.sfreq:g} Hz; more leading "
                           "samples serve as filter pre-roll)")
    _finite(X, "trials")
    return X


def read_npy(fileobj: BinaryIO) -> np.ndarray:
    """Read one numeric array in .npy format; never unpickles (object arrays are refused)."""
    try:
        arr = np.lib.format.read_array(fileobj, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RequestError(f"trials is not a readable .npy array without pickled objects "
                           f"({reason})") from None
    if arr.dtype.kind not in "fiu":
        raise RequestError(f"trials must be a numeric array, got dtype {arr.dtype}")
    return arr


def check_features(features: Any, n_features: int) -> np.ndarray:
    """Validate a batch of feature vectors, shape (n, n_features)."""
    try:
        F = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError("features must be a numeric array of shape (n, n_features) with rows of "
                           "equal length") from None
    if F.size == 0:
        raise RequestError("features is an empty batch: send at least one feature vector")
    if F.ndim != 2:
        raise RequestError(f"features must have shape (n, {n_features}), got {F.ndim} dimensions")
    if F.shape[1] != n_features:
        raise RequestError(f"feature vectors have {F.shape[1]} values, the model expects {n_features}")
    _finite(F, "features")
    return F


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_of(pipe: Pipeline) -> StreamingDecoder:
    """The streaming twin of a held model, compiled once per pipeline object (its final step,
    feature count and classes serve ``/classify_features`` and ``/model``)."""
    dec = _DECODERS.get(pipe)
    if dec is None:
        dec = _DECODERS[pipe] = compile_streaming(pipe)
    return dec


def _classes(pipe: Pipeline) -> list[str]:
    return [str(c) for c in decoder_of(pipe).classes]


def classify_trials(pipe: Pipeline, X: np.ndarray) -> dict[str, Any]:
    """Decode checked raw trials: filter from zero state, keep the last window, CSP, classifier.

    Leading samples beyond the window are pre-roll for the causal filter; without any the
    filter transient spoils the start of the window, which the result says.
    """
    profile = pipeline_profile(pipe)
    proba = pipe.predict_proba(X)
    classes = _classes(pipe)
    labels = [classes[i] for i in np.argmax(proba, axis=1)]
    preroll = int(X.shape[2] - profile.window_samples)
    out: dict[str, Any] = {
        "labels": labels,
        "probabilities": proba.tolist(),
        "classes": classes,
        "preroll": preroll > 0,
        "preroll_samples": preroll,
        "warning": None,
    }
    if preroll == 0:
        out["warning"] = (f"no pre-roll: the trials hold exactly one window ({profile.window_samples} "
                          "samples), so the causal filter starts from zero state inside it and its "
                          "transient affects the first ~0.2-0.5 s; send extra leading samples")
    return out


def classify_features(pipe: Pipeline, features: np.ndarray) -> dict[str, Any]:
    """Classify feature vectors with the decoder's final step (numpy twin; labels = argmax)."""
    proba = decoder_of(pipe).predict_proba(features)
    classes = _classes(pipe)
    return {
        "labels": [classes[i] for i in np.argmax(proba, axis=1)],
        "probabilities": proba.tolist(),
        "classes": classes,
    }


def recording_suffix(filename: str | None) -> str:
    """The recording suffix of an uploaded file name, or `RequestError` naming the accepted ones."""
    name = (filename or "").lower()
    for suffix in sorted(RECORDING_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    suffix = Path(name).suffix or "no suffix"
    raise RequestError(f"uploaded file name ends in {suffix!r}, not a recording suffix; expected one of "
                       f"{', '.join(RECORDING_SUFFIXES)}")


def classify_recording(pipe: Pipeline, path: Path, labels: Path | None = None) -> dict[str, Any]:
    """Cue-locked predictions for every usable trial of a recording, with scores when labelled.

    Parameters
    ----------
    pipe : Pipeline
        The fitted model; its profile reads the file.
    path : Path
        The recording (suffix decides the reader).
    labels : Path, optional
        A ``classlabel`` .mat file for cues of unknown class.

    Returns
    -------
    dict
        ``trials`` (per usable cue: index, cue sample, window end, true label, predicted label,
        probabilities), ``excluded`` (cue index -> reason), ``n_trials``, and ``accuracy`` /
        ``kappa`` over the trials whose class is known (``None`` when none is).

    Raises
    ------
    RequestError
        The file cannot be read with the model's profile (channels, rate, format).
    """
    profile = pipeline_profile(pipe)
    try:
        rec = load_recording(path, profile, labels=labels)
    except BcistreamError as exc:
        # The temp path means nothing to the caller; keep only the reason.
        raise RequestError(str(exc).replace(str(path), "uploaded file")) from None
    epochs = epochs_from_recording(pipe, rec, labelled_only=False)
    classes = _classes(pipe)
    out: dict[str, Any] = {"classes": classes, "n_cues": len(rec.cues), "n_trials": len(epochs.y),
                           "excluded": {str(k): v for k, v in epochs.excluded.items()},
                           "trials": [], "accuracy": None, "kappa": None, "n_labelled": 0}
    if len(epochs.y) == 0:
        return out
    pred, proba = decode_filtered(pipe, epochs.X)
    for k, cue_i in enumerate(epochs.cue_index):
        truth = epochs.y[k]
        out["trials"].append({
            "cue_index": int(cue_i),
            "cue_sample": int(rec.cues[cue_i].sample),
            "window_end": int(epochs.window_end[k]),
            "true_label": None if truth is None else str(truth),
            "label": str(pred[k]),
            "probabilities": [float(p) for p in proba[k]],
        })
    known = np.array([y is not None for y in epochs.y])
    if known.any():
        y_true = np.asarray(epochs.y[known], dtype=str)
        y_pred = np.asarray(pred[known], dtype=str)
        out["accuracy"] = float(accuracy_score(y_true, y_pred))
        out["kappa"] = float(cohen_kappa_score(y_true, y_pred, labels=list(profile.class_names)))
        out["n_labelled"] = int(known.sum())
    return out
