"""Small in-memory recordings and a fitted pipeline for the realtime tests (no files needed)."""

from __future__ import annotations

import numpy as np

from bcistream.data.profiles import load_profile
from bcistream.data.recording import Cue, Recording
from bcistream.pipeline import epochs_from_recording, fit_filtered, make_pipeline


def synth_recording(seconds: float = 40.0, seed: int = 0, *, trial_every: float = 5.0,
                    nan_at: tuple[float, float] | None = None, source: str = "synthetic") -> Recording:
    """Noise plus class-dependent 12 Hz bursts (left: first channels, right: last) after each cue."""
    prof = load_profile(None)
    rng = np.random.default_rng(seed)
    sf, n_ch = prof.sfreq, prof.n_channels
    n = int(seconds * sf)
    data = rng.standard_normal((n_ch, n)) * 5e-6
    t = np.arange(n) / sf
    cues = []
    labels = ("left", "right")
    for i, onset in enumerate(np.arange(1.0, seconds - 4.0, trial_every)):
        label = labels[i % 2]
        s = int(onset * sf)
        e = s + int(4.0 * sf)
        rows = slice(0, 8) if label == "left" else slice(14, 22)
        data[rows, s:e] += 8e-6 * np.sin(2 * np.pi * 12 * t[s:e] + rng.uniform(0, 6.28))
        cues.append(Cue(s, label))
    if nan_at is not None:
        data[:, int(nan_at[0] * sf):int(nan_at[1] * sf)] = np.nan
    return Recording(data, prof, tuple(cues), source)


def fitted_pipeline(seed: int = 0, **params):
    """A pipeline fitted on a synthetic recording (2 classes)."""
    rec = synth_recording(60.0, seed=seed, trial_every=4.5)
    pipe = make_pipeline(**params)
    return fit_filtered(pipe, epochs_from_recording(pipe, rec))


def offline_windows(pipe, rec: Recording, ends) -> np.ndarray:
    """Windows ending at ``ends`` cut from the continuously filtered recording (the offline path)."""
    from bcistream.pipeline import filter_recording

    filtered = filter_recording(pipe, rec)
    win = rec.profile.window_samples
    return np.stack([filtered[:, e - win:e] for e in ends])


def run_all(engine, source) -> list:
    """Poll a MemorySource to the end through the engine."""
    out = []
    while not source.exhausted:
        out.extend(engine.process(source.poll()))
    return out


class RecordingClassifier:
    """A Classifier stand-in that wraps another and keeps every feature batch it saw."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.features: list[np.ndarray] = []

    def classify(self, features, version):
        self.features.append(np.array(features))
        return self.inner.classify(features, version)


def fitted_decoder(name: str, seed: int = 0, **params):
    """A registered decoder's pipeline fitted on a synthetic recording (2 classes)."""
    from bcistream.decoders import make_decoder

    rec = synth_recording(60.0, seed=seed, trial_every=4.5)
    pipe = make_decoder(name, **params)
    return fit_filtered(pipe, epochs_from_recording(pipe, rec))
