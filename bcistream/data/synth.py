"""Synthetic motor-imagery recordings in the BCI Competition IV 2a layout.

Per subject a training (``A0xT``) and an evaluation (``A0xE``) session with the 25 channel names of
the real GDF files as MNE reads them, 250 Hz, the 2a timeline (EOG block, 6 runs of 48 trials,
768 / cue / 1023 / 32766 annotations, ``783`` cues plus ``A0xE.mat`` labels in E; drawn by
`bcistream.data.synth_paradigm`) and a signal that makes decoding a real test:

* 1/f background: a common-mode part, spatially smooth sources and independent channel noise;
* mu (~10 Hz, per-subject peak) and beta (~20 Hz) rhythms of five sensorimotor areas, spread
  over the scalp by a Gaussian fall-off with distance, waxing and waning on their own;
* class-specific ERD during imagery (left hand → right-hemisphere hand area around C4, right
  hand → C3, feet → the vertex area with surround ERS over the hand areas, tongue → bilateral
  lateral areas beyond C5/C6), with per-trial variability and lapses, and a beta rebound;
* blinks and eye movements in the EOG channels leaking into frontal EEG, 50 Hz line noise,
  muscle bursts in the rejected trials, a parietal alpha rhythm that grows with eyes closed;
* session drift (E differs from T in channel gains, source positions, rhythm peaks and noise)
  and a per-subject skill that sets ERD depth, lapses, SNR and drift.

Subjects' skills follow a golden-ratio sequence, so any 9 consecutive subjects span the whole
range from near chance to ~90 % whatever the seed. Everything is drawn from generators seeded
by ``(seed, subject, purpose)``: the same seed gives the same data, and a subject's parameters
do not depend on how many subjects or trials are generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bcistream.data import synth_signals as sig
from bcistream.data.profiles import load_profile
from bcistream.data.recording import Recording
from bcistream.data.synth_paradigm import SFREQ, Timeline, timeline
from bcistream.errors import DataError

if TYPE_CHECKING:
    import mne

__all__ = [
    "CHANNELS",
    "SFREQ",
    "make_small_dataset",
    "synthesize_session",
    "synthetic_recording",
    "write_dataset",
]

#: Channel names of the real files as ``mne.io.read_raw_gdf`` returns them.
CHANNELS: tuple[str, ...] = (
    "EEG-Fz", "EEG-0", "EEG-1", "EEG-2", "EEG-3", "EEG-4", "EEG-5", "EEG-C3", "EEG-6", "EEG-Cz",
    "EEG-7", "EEG-C4", "EEG-8", "EEG-9", "EEG-10", "EEG-11", "EEG-12", "EEG-13", "EEG-14",
    "EEG-Pz", "EEG-15", "EEG-16", "EOG-left", "EOG-central", "EOG-right",
)
_POSITIONS = np.array(list(sig.EEG_POSITIONS.values()))  # same order as the 22 EEG channels
_EOG_POSITIONS = np.array([(-4.0, 16.0), (0.0, 17.0), (4.0, 16.0)])
_LIMIT = 99e-6  # the files' physical range is +-100 uV; -100 uV means "missing" in real 2a
_LSB = 1e-4 / 32767  # int16 resolution of the FIF files (about that of the real GDF files)
_GOLDEN = (math.sqrt(5) - 1) / 2

# Sensorimotor areas: hand L (C3), hand R (C4), feet (vertex), tongue L, tongue R; then parietal
# alpha. Scalp projection (cm) and Gaussian spread (cm).
_AREAS = np.array([(-7.6, -1.0), (7.8, -1.0), (0.0, -2.0), (-12.5, 1.5), (12.5, 1.5), (0.0, -9.5)])
_SPREAD = np.array([3.4, 3.4, 3.2, 3.4, 3.4, 4.5])
_MU_GAIN = np.array([1.0, 1.0, 0.7, 0.7, 0.7])
# ERD weight of each class (rows: left, right, feet, tongue) on each area; < 0 is ERS.
_CLASS_ERD = np.array([
    [0.0, 1.0, 0.0, 0.0, 0.0],
    [1.0, 0.0, 0.0, 0.0, 0.0],
    [-0.25, -0.25, 1.0, 0.0, 0.0],
    [-0.15, -0.15, 0.0, 0.9, 0.9],
])


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *key]))


def subject_skill(subject: int, seed: int) -> float:
    """Skill in [0, 1) of a subject: a golden-ratio sequence with a seed-dependent start."""
    start = _rng(seed, 7919).random()
    return float((start + subject * _GOLDEN) % 1.0)


def _subject_params(subject: int, seed: int) -> dict:
    rng = _rng(seed, subject, 0)
    skill = subject_skill(subject, seed)
    return {
        "skill": skill,
        "mu_peak": rng.uniform(9.0, 12.0),
        "beta_peak": rng.uniform(18.0, 24.0),
        "areas": _AREAS + rng.normal(0.0, 0.6, _AREAS.shape),
        "mu_amp": rng.uniform(5.0, 7.0) * 1e-6 * (0.7 + 0.6 * skill),
        "beta_ratio": rng.uniform(0.3, 0.5),
        "alpha_amp": rng.uniform(3.0, 6.0) * 1e-6,
        "bg_amp": rng.uniform(7.0, 9.0) * 1e-6,
        "erd_depth": 0.40 + 0.36 * skill,
        "lapse": 0.33 - 0.25 * skill,
        "wax": 0.45 - 0.2 * skill,
        "drift": 0.2 - 0.12 * skill,
        "blink_rate": rng.uniform(0.1, 0.35),
        "bg_sources": rng.uniform((-12.0, -11.0), (12.0, 15.0), (8, 2)),
    }


def _session_params(p: dict, session: str, rng: np.random.Generator) -> dict:
    """Per-session state; E drifts from T by an amount set by the subject's ``drift``."""
    d = p["drift"] if session == "E" else 0.0
    gains = rng.lognormal(0.0, 0.05 + 0.3 * d, len(CHANNELS))
    return {
        "areas": p["areas"] + rng.normal(0.0, 1.5 * d, p["areas"].shape),
        "mu_peak": p["mu_peak"] + rng.normal(0.0, 1.0 * d),
        "beta_peak": p["beta_peak"] + rng.normal(0.0, 2.0 * d),
        "gains": gains,
        "bg_amp": p["bg_amp"] * rng.lognormal(0.0, 0.3 * d),
        "erd_scale": 1.0 - rng.uniform(0.0, 0.8 * d),
        "line_amp": rng.uniform(1.0, 4.0, len(CHANNELS)) * 1e-6,
    }


def _background(rng: np.random.Generator, p: dict, s: dict, n: int) -> np.ndarray:
    pos = np.vstack([_POSITIONS, _EOG_POSITIONS])
    common = sig.pink_noise(rng, 1, n, SFREQ, 1.2)
    smooth = sig.pink_noise(rng, len(p["bg_sources"]), n, SFREQ, rng.uniform(1.0, 1.6, 8))
    own = sig.pink_noise(rng, len(pos), n, SFREQ, rng.uniform(0.8, 1.4, len(pos)), floor=0.05)
    mix = sig.mixing_matrix(pos, p["bg_sources"], np.full(len(p["bg_sources"]), 5.0))
    mix /= np.sqrt((mix**2).sum(1, keepdims=True))
    return s["bg_amp"] * (0.4 * common + 0.6 * (mix @ smooth) + 0.6 * own)


def _rhythms(rng: np.random.Generator, p: dict, s: dict, tl: Timeline, n: int) -> np.ndarray:
    """Mu/beta of the five areas with class ERD, plus parietal alpha, on the 25 channels."""
    peaks = np.concatenate([np.full(5, s["mu_peak"]), np.full(5, s["beta_peak"]), [s["mu_peak"] - 0.5]])
    peaks[:5] += rng.normal(0.0, 0.3, 5)
    widths = np.concatenate([np.full(5, 1.2), np.full(5, 2.5), [1.0]])
    src = sig.rhythm(rng, n, SFREQ, peaks, widths)
    src *= sig.slow_envelope(rng, len(src), n, SFREQ, p["wax"])
    # Per-trial engagement: lognormal depth, and lapses where the subject did not imagine.
    w = p["erd_depth"] * s["erd_scale"] * rng.lognormal(0.0, 0.3, len(tl.cues))
    w *= rng.random(len(tl.cues)) >= p["lapse"]
    weights = _CLASS_ERD[tl.classes].T * w  # (5 areas, n_trials)
    mu_course = sig.event_course(n, tl.cues, weights, sig.erd_kernel(SFREQ))
    beta_course = sig.event_course(n, tl.cues, 0.8 * weights, sig.erd_kernel(SFREQ, rebound=0.6))
    src[:5] *= np.clip(1.0 - mu_course, 0.05, None) * (p["mu_amp"] * _MU_GAIN)[:, None]
    src[5:10] *= np.clip(1.0 - beta_course, 0.05, None) * (p["mu_amp"] * p["beta_ratio"] * _MU_GAIN)[:, None]
    alpha = np.full(n, p["alpha_amp"])
    alpha[slice(*tl.eyes_closed)] *= 2.5
    src[10] *= alpha
    areas = np.vstack([s["areas"][:5], s["areas"][:5], s["areas"][5:]])
    pos = np.vstack([_POSITIONS, _EOG_POSITIONS])
    return sig.mixing_matrix(pos, areas, np.concatenate([_SPREAD[:5], _SPREAD[:5], _SPREAD[5:]])) @ src


def _ocular(rng: np.random.Generator, p: dict, tl: Timeline, n: int) -> np.ndarray:
    """Blinks and horizontal eye movements: EOG traces plus their leak into frontal EEG."""
    rate = np.full(n, p["blink_rate"])
    for cue in tl.cues:  # fewer blinks while imagining
        rate[cue : cue + int(4 * SFREQ)] *= 0.4
    rate[slice(*tl.eyes_closed)] = 0.0
    vert = sig.blink_train(rng, n, SFREQ, rate, 60e-6)
    horiz = np.zeros(n)
    a, b = tl.eye_moves
    step = int(SFREQ)
    levels = np.repeat(rng.choice([-1.0, 0.0, 1.0], (b - a) // step + 1), step)[: b - a]
    horiz[a:b] = 25e-6 * levels
    d = np.hypot(*(_POSITIONS - np.array(sig.FPZ)).T)
    v_leak = np.exp(-d / 6.0)
    h_leak = 0.3 * v_leak * np.tanh(_POSITIONS[:, 0] / 4.0)
    eeg = v_leak[:, None] * vert + h_leak[:, None] * horiz
    eog = np.array([0.85, 1.0, 0.85])[:, None] * vert + np.array([-1.0, 0.0, 1.0])[:, None] * horiz
    return np.vstack([eeg, eog])


def _line_and_muscle(rng: np.random.Generator, s: dict, tl: Timeline, n: int) -> np.ndarray:
    t = np.arange(n) / SFREQ
    phase = rng.uniform(0, 2 * np.pi, len(CHANNELS))
    # a sin(wt + phi) = a cos(phi) sin(wt) + a sin(phi) cos(wt): one (25 x 2) @ (2 x n) product.
    coef = s["line_amp"][:, None] * np.stack([np.cos(phase), np.sin(phase)], axis=1)
    out = coef @ np.stack([np.sin(2 * np.pi * 50.0 * t), np.cos(2 * np.pi * 50.0 * t)])
    # Muscle bursts (why the experts rejected those trials) on one side's lateral channels.
    lateral = np.clip(np.abs(_POSITIONS[:, 0]) / 12.0, 0.1, 1.0)
    for cue in tl.cues[tl.rejected]:
        start = cue + int(rng.uniform(0.0, 3.0) * SFREQ)
        length = min(int(rng.uniform(0.5, 1.5) * SFREQ), n - start)
        burst = np.diff(rng.standard_normal(length + 1)) * 12e-6
        side = np.sign(_POSITIONS[:, 0]) == rng.choice([-1.0, 1.0])
        out[:22, start : start + length] += (lateral * side)[:, None] * burst
    return out


def synthesize_session(
    subject: int, session: str, seed: int, *, n_trials_per_class: int = 72,
) -> mne.io.RawArray:
    """Synthesize one session of a subject as an MNE raw object with 2a annotations.

    Parameters
    ----------
    subject : int
        Subject number (1..99); sets the subject's skill, rhythms and anatomy.
    session : {"T", "E"}
        Training (cues 769–772) or evaluation (cues 783) session.
    seed : int
        Random seed; the same arguments give the same data.
    n_trials_per_class : int
        Trials per class (72 in the real dataset; fewer for quick tests). Signal properties (ERD
        depth, drift) do not depend on it.

    Returns
    -------
    mne.io.RawArray
        25 channels (type ``eeg``, as MNE reads the GDF files), 250 Hz, volts, annotations set.
        ``raw.info["description"]`` is ``"labels:"`` followed by the true class (1..4) of each
        trial in cue order (other tests parse it; `write_dataset` keeps it out of the files).
    """
    import mne

    if session not in ("T", "E"):
        raise DataError(f"session must be 'T' or 'E', got {session!r}")
    if not 1 <= int(subject) <= 99:
        raise DataError(f"subject must be 1..99, got {subject}")
    if int(n_trials_per_class) < 1:
        raise DataError(f"n_trials_per_class must be >= 1, got {n_trials_per_class}")
    code = 1 if session == "T" else 2
    p = _subject_params(subject, seed)
    s = _session_params(p, session, _rng(seed, subject, 1, code))
    tl = timeline(_rng(seed, subject, 3, code), session, int(n_trials_per_class))
    rng = _rng(seed, subject, 2, code)
    n = tl.n_times
    data = _background(rng, p, s, n)
    data += _rhythms(rng, p, s, tl, n)
    data *= s["gains"][:, None]
    data += _ocular(rng, p, tl, n)
    data += _line_and_muscle(rng, s, tl, n)
    np.clip(data, -_LIMIT, _LIMIT, out=data)

    info = mne.create_info(list(CHANNELS), SFREQ, channel_types())
    with info._unlock():  # the recording band of the real files; MNE has no public setter
        info["highpass"], info["lowpass"] = 0.5, 100.0
    info["line_freq"] = 50.0
    info["description"] = "labels:" + "".join(str(c + 1) for c in tl.classes)
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(datetime(2008, 1, 1, tzinfo=UTC) + timedelta(days=2 * subject + code))
    raw.set_annotations(mne.Annotations(tl.onsets, tl.durations, tl.descriptions,
                                        orig_time=raw.info["meas_date"]))
    return raw


def channel_types() -> list[str]:
    """MNE channel types of `CHANNELS`: ``eeg`` for those the 2a profile decodes (its channels,
    by their names in the files), ``eog`` for the three EOG channels, as in MOABB's 2a."""
    prof = load_profile(None)
    return ["eeg" if prof.rename.get(name, name) in prof.channels else "eog" for name in CHANNELS]


def _labels(raw) -> np.ndarray:
    return np.array([int(c) for c in raw.info["description"].split(":", 1)[1]], dtype=np.uint8)


def synthetic_recording(
    subject: int, session: str, seed: int, *, n_trials_per_class: int = 72,
) -> Recording:
    """One synthetic session as a `Recording` in memory (evaluation cues labelled), no file written.

    The same data `write_dataset` writes and `load_recording` reads back (up to int16 storage).
    """
    from bcistream.data.loader import recording_from_raw

    raw = synthesize_session(subject, session, seed, n_trials_per_class=n_trials_per_class)
    prof = load_profile(None)
    true = [prof.class_names[c - 1] for c in _labels(raw)] if session == "E" else None
    return recording_from_raw(raw, prof, unknown_labels=true, source=f"synthetic A{subject:02d}{session}")


def _write_session(raw, path: Path, fmt: str) -> None:
    import mne

    if fmt == "fif":
        # int16 on disk like the real GDF files (1 step = 100/32767 uV): half the size of float32.
        # The half-step offset makes MNE's truncating cast land on the rounded value.
        q = raw.get_data() / _LSB
        np.round(q, out=q)
        q += 0.5 * np.sign(q)
        q *= _LSB
        info = raw.info.copy()
        info["description"] = None  # the true classes stay out of the files (A0xE.mat has them)
        for ch in info["chs"]:
            ch["cal"] = _LSB
        out = mne.io.RawArray(q, info, copy=None, verbose="error")
        out.set_annotations(raw.annotations)
        out.save(path, fmt="short", overwrite=True, verbose="error")
    else:
        mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")


def write_dataset(
    out: str | Path,
    subjects: int = 9,
    seed: int = 0,
    fmt: str = "fif",
    progress: Callable[[str], None] | None = None,
    *,
    n_trials_per_class: int = 72,
) -> list[Path]:
    """Write subjects ``1..subjects``: ``A0xT_raw.fif``, ``A0xE_raw.fif`` and ``A0xE.mat``.

    Parameters
    ----------
    out : str or Path
        Output folder (created if missing).
    subjects : int
        Number of subjects.
    seed : int
        Random seed (same seed, same data).
    fmt : {"fif", "edf"}
        ``fif`` writes ``A0xT_raw.fif``; ``edf`` writes ``A0xT.edf`` (needs ``edfio``).
    progress : callable, optional
        Called with a short label after each written session (twice per subject).
    n_trials_per_class : int
        Trials per class and session (72 in the real dataset).

    Returns
    -------
    list of Path
        The written files, in order.
    """
    from scipy.io import savemat

    fmt = fmt.lower()
    if fmt not in ("fif", "edf"):
        raise DataError(f"fmt must be 'fif' or 'edf', got '{fmt}'")
    if fmt == "edf":
        try:
            import edfio  # noqa: F401
        except ImportError:
            raise DataError("EDF export needs the 'edfio' package (pip install edfio)") from None
    if not 1 <= int(subjects) <= 99:
        raise DataError(f"subjects must be 1..99, got {subjects}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for subject in range(1, int(subjects) + 1):
        for session in ("T", "E"):
            raw = synthesize_session(subject, session, seed, n_trials_per_class=n_trials_per_class)
            stem = f"A{subject:02d}{session}"
            path = out / (f"{stem}_raw.fif" if fmt == "fif" else f"{stem}.edf")
            _write_session(raw, path, fmt)
            paths.append(path)
            if session == "E":
                mat = out / f"{stem}.mat"
                savemat(mat, {"classlabel": _labels(raw).reshape(-1, 1)})
                paths.append(mat)
            if progress is not None:
                progress(f"wrote {stem}")
    return paths


def make_small_dataset(
    out: str | Path, subjects: int = 1, seed: int = 0, n_trials_per_class: int = 12, fmt: str = "fif",
) -> list[Path]:
    """A short 2a-shaped dataset for tests (``12`` trials per class: ~7 min per session, < 2 s).

    Same files and signal model as `write_dataset`, only fewer trials per session.
    """
    return write_dataset(out, subjects=subjects, seed=seed, fmt=fmt,
                         n_trials_per_class=n_trials_per_class)
