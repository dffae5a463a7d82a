"""Fixtures of the streaming tests: a fitted model saved as a folder, a short synthetic recording."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class StreamSetup:
    """What the end-to-end streaming tests share."""

    pipeline: object
    model_dir: Path
    recording_path: Path
    recording: object
    expected: dict[int, str]  #: window_end -> offline label, one per cue
    proba: dict[int, np.ndarray]


def _fif(raw, path: Path) -> Path:
    raw.save(path, overwrite=True, verbose="error")
    return path


@pytest.fixture(scope="session")
def stream_setup(tmp_path_factory) -> StreamSetup:
    """Fit on one synthetic session, replay another (3 trials per class, ~95 s after cropping)."""
    import mlflow.sklearn

    from bcistream.data.loader import load_recording
    from bcistream.data.synth import synthesize_session
    from bcistream.pipeline import decode_filtered, epochs_from_recording, fit_filtered, make_pipeline
    from bcistream.training.registry import TRUSTED_TYPES

    folder = tmp_path_factory.mktemp("stream")
    train = load_recording(_fif(synthesize_session(1, "T", 0, n_trials_per_class=6), folder / "A01T_raw.fif"))
    pipe = make_pipeline()
    fit_filtered(pipe, epochs_from_recording(pipe, train))
    model_dir = folder / "model"
    mlflow.sklearn.save_model(pipe, str(model_dir), serialization_format="skops",
                              skops_trusted_types=list(TRUSTED_TYPES))
    raw = synthesize_session(1, "T", 1, n_trials_per_class=3)
    cues = [a["onset"] for a in raw.annotations if a["description"] in ("769", "770", "771", "772")]
    raw.crop(tmin=max(0.0, min(cues) - 4.0))  # drop the eye-movement block: shorter replays
    path = _fif(raw, folder / "B01T_raw.fif")
    rec = load_recording(path)
    ep = epochs_from_recording(pipe, rec, include_rejected=True, labelled_only=False)
    labels, proba = decode_filtered(pipe, ep.X)
    assert len(labels) == len(rec.cues) >= 10
    return StreamSetup(pipe, model_dir, path, rec,
                       {int(e): str(lab) for e, lab in zip(ep.window_end, labels, strict=True)},
                       {int(e): p for e, p in zip(ep.window_end, proba, strict=True)})
