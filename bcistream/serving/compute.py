"""What the service computes, without HTTP: decoding with one fitted model.

Raw trials, feature vectors and whole recordings are decoded here; the checks of user input that
come first live in `bcistream.serving.validation` (its names stay importable from here). Every
refusal raises `RequestError` with a message that names the problem and the status it maps to
(400 for bad content, 409 for a model version the service does not hold). The service only
translates these into responses, so the rules are tested without a server.
"""

from __future__ import annotations

import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.pipeline import Pipeline

from bcistream.data.loader import RECORDING_SUFFIXES, load_recording
from bcistream.decoders import StreamingDecoder, compile_streaming
from bcistream.errors import BcistreamError
from bcistream.pipeline import class_order, decode_filtered, epochs_from_recording, pipeline_profile

# The validation names below were defined here before; re-exported so imports from here keep working.
from bcistream.serving.validation import MAX_ABS_FEATURE as MAX_ABS_FEATURE
from bcistream.serving.validation import MAX_ABS_VOLTS as MAX_ABS_VOLTS
from bcistream.serving.validation import MAX_NPY_HEADER as MAX_NPY_HEADER
from bcistream.serving.validation import SFREQ_RANGE as SFREQ_RANGE
from bcistream.serving.validation import UNITS_FIX_BINARY as UNITS_FIX_BINARY
from bcistream.serving.validation import UNITS_FIX_JSON as UNITS_FIX_JSON
from bcistream.serving.validation import (
    RequestError,
    _first_bad_trial,
    check_features,
    check_sfreq,
    check_trials,
    describe_shape,
    read_npy,
    read_npy_buffer,
)

__all__ = [
    "RequestError",
    "check_features",
    "check_sfreq",
    "describe_shape",
    "check_trials",
    "classify_features",
    "classify_recording",
    "classify_trials",
    "read_npy",
    "read_npy_buffer",
    "recording_suffix",
]


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_of(pipe: Pipeline) -> StreamingDecoder:
    """The streaming twin of a held model, compiled once per pipeline object (its final step,
    feature count and classes serve ``/classify_features`` and ``/model``)."""
    dec = _DECODERS.get(pipe)
    if dec is None:
        dec = _DECODERS[pipe] = compile_streaming(pipe)
    return dec


def _check_output(proba: np.ndarray, what: str) -> None:
    """The last line of defence: a non-finite probability is a refused input, never a 200."""
    ok = np.isfinite(proba).all(axis=1)
    if not ok.all():
        raise RequestError(f"{what} {_first_bad_trial(~ok)} gives no finite class probabilities "
                           "(degenerate input)")


def classify_trials(pipe: Pipeline, X: np.ndarray) -> dict[str, Any]:
    """Decode checked raw trials: filter from zero state, keep the last window, features, classifier.

    Leading samples beyond the window are pre-roll for the causal filter; without any the
    filter transient spoils the start of the window, which the result says. Probability
    columns follow ``classes`` (the profile's order, `bcistream.pipeline.class_order`).

    Raises
    ------
    RequestError
        A trial whose probabilities are not finite (degenerate input that passed the checks).
    """
    profile = pipeline_profile(pipe)
    classes, columns = class_order(pipe)
    with np.errstate(all="ignore"):
        proba = pipe.predict_proba(X)[:, columns]
    _check_output(proba, "trial")
    preroll = int(X.shape[2] - profile.window_samples)
    out: dict[str, Any] = {
        "labels": [str(c) for c in classes[np.argmax(proba, axis=1)]],
        "probabilities": proba.tolist(),
        "classes": [str(c) for c in classes],
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
    """Classify feature vectors with the decoder's final step (numpy twin of the fitted estimator;
    labels = argmax, profile class order)."""
    dec = decoder_of(pipe)
    classes = dec.classes
    with np.errstate(all="ignore"):
        proba = dec.predict_proba(features)
    _check_output(proba, "feature vector")
    return {
        "labels": [str(c) for c in classes[np.argmax(proba, axis=1)]],
        "probabilities": proba.tolist(),
        "classes": [str(c) for c in classes],
    }


def recording_suffix(filename: str | None) -> str:
    """The recording suffix of an uploaded file name, or `RequestError` naming the accepted ones."""
    name = (filename or "").lower()
    for suffix in sorted(RECORDING_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    suffix = Path(name).suffix
    what = f"ends in {suffix!r}, not a recording suffix" if suffix else "has no suffix"
    raise RequestError(f"uploaded file name {(filename or '')[:60]!r} {what}; expected one of "
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
        # The temp paths mean nothing to the caller; keep only the reason.
        msg = str(exc)
        for tmp, name in ((path, "uploaded file"), (labels, "uploaded labels file")):
            if tmp is not None:
                msg = msg.replace(repr(Path(tmp)), repr(name)).replace(str(tmp), name)
        raise RequestError(msg) from None
    data = np.asarray(rec.data)
    # NaN stretches are normal (2a files mark gaps with NaN; their trials are excluded later).
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        flat = data.size == 0 or bool((np.nanmax(data, axis=-1) == np.nanmin(data, axis=-1)).all())
    if flat or not np.isfinite(data).any():
        raise RequestError("the uploaded recording is flat (every channel constant): nothing to decode")
    epochs = epochs_from_recording(pipe, rec, labelled_only=False)
    classes = [str(c) for c in class_order(pipe)[0]]
    out: dict[str, Any] = {"classes": classes, "n_cues": len(rec.cues), "n_trials": len(epochs.y),
                           "excluded": {str(k): v for k, v in epochs.excluded.items()},
                           "trials": [], "accuracy": None, "kappa": None, "n_labelled": 0}
    if len(epochs.y) == 0:
        return out
    with np.errstate(all="ignore"):
        pred, proba = decode_filtered(pipe, epochs.X)
    good = np.isfinite(proba).all(axis=1)
    for k, cue_i in enumerate(epochs.cue_index):
        if not good[k]:  # a flat or clipped stretch: no answer rather than a wrong one
            out["excluded"][str(int(cue_i))] = "degenerate window (no finite class probabilities)"
            continue
        truth = epochs.y[k]
        out["trials"].append({
            "cue_index": int(cue_i),
            "cue_sample": int(rec.cues[cue_i].sample),
            "window_end": int(epochs.window_end[k]),
            "true_label": None if truth is None else str(truth),
            "label": str(pred[k]),
            "probabilities": [float(p) for p in proba[k]],
        })
    out["n_trials"] = int(good.sum())
    known = np.array([y is not None for y in epochs.y]) & good
    if known.any():
        y_true = np.asarray(epochs.y[known], dtype=str)
        y_pred = np.asarray(pred[known], dtype=str)
        out["accuracy"] = float(accuracy_score(y_true, y_pred))
        out["kappa"] = float(cohen_kappa_score(y_true, y_pred, labels=list(profile.class_names)))
        out["n_labelled"] = int(known.sum())
    return out
