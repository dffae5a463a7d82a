"""The paradigm of the synthetic 2a sessions: when each trial, cue and annotation happens.

Kept apart from `bcistream.data.synth` (the signal model and the files) so the timing scheme of
the BCI Competition IV 2a paradigm lives in one place: an EOG block (eyes open, eyes closed, eye
movements), then runs of shuffled trials, each a ``768`` trial start, a cue 2 s later (``769``-
``772`` by class in training sessions, ``783`` in evaluation ones) and 7.5-8.5 s to the next
trial, with a few trials marked rejected (``1023``). Pure numpy; the caller's generator makes it
reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SFREQ", "Timeline", "timeline"]

#: Sampling rate of the 2a recordings (Hz); the timeline's seconds become samples at this rate.
SFREQ = 250.0
_CUE_CODES = ("769", "770", "771", "772")  # left, right, feet, tongue


@dataclass(frozen=True)
class Timeline:
    """One session's paradigm on the sample axis, with its annotations.

    Attributes
    ----------
    n_times : int
        Samples in the session.
    onsets, durations : list of float
        Annotation onsets and durations (s), sorted by onset (a trial's ``768`` before its other
        annotations at the same time).
    descriptions : list of str
        Annotation codes as in the real GDF files (``32766`` new run, ``276`` / ``277`` / ``1072``
        the EOG block, ``768`` trial start, ``769``-``772`` cues in T, ``783`` cues in E, ``1023``
        rejected trial).
    cues : ndarray of int
        Cue sample of each trial.
    classes : ndarray of int
        Class of each trial, 0..3 (left, right, feet, tongue).
    rejected : ndarray of bool
        Trials marked rejected (``1023``).
    eyes_closed, eye_moves : tuple of int
        ``(start, stop)`` samples of the eyes-closed and eye-movement parts of the EOG block.
    """

    n_times: int
    onsets: list[float]
    durations: list[float]
    descriptions: list[str]
    cues: np.ndarray  # cue sample of each trial
    classes: np.ndarray  # 0..3
    rejected: np.ndarray  # bool
    eyes_closed: tuple[int, int]
    eye_moves: tuple[int, int]


def timeline(rng: np.random.Generator, session: str, n_per_class: int) -> Timeline:
    """Draw the timeline of one session: EOG block, runs of shuffled trials, rejected trials.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the trial order, the inter-trial jitter and the rejected trials.
    session : {"T", "E"}
        Training (cues ``769``-``772``) or evaluation (cues ``783``).
    n_per_class : int
        Trials per class; the runs are ``gcd(n_per_class, 6)`` (6 runs of 48 trials for 72).

    Returns
    -------
    Timeline
    """
    n_runs = math.gcd(n_per_class, 6)
    per_run = n_per_class // n_runs
    ann: list[tuple[float, float, str]] = [(0.0, 0.0, "32766")]
    block = 15.0
    for k, code in enumerate(("276", "277", "1072")):
        ann.append((1.0 + k * (block + 1.0), block, code))
    t = 1.0 + 3 * (block + 1.0) + 1.0
    cues, classes = [], []
    for _ in range(n_runs):
        ann.append((t, 0.0, "32766"))
        t += 2.0
        order = rng.permutation(np.repeat(np.arange(4), per_run))
        for c in order:
            ann.append((t, 6.0, "768"))
            ann.append((t + 2.0, 1.25, _CUE_CODES[c] if session == "T" else "783"))
            cues.append(int(round((t + 2.0) * SFREQ)))
            classes.append(int(c))
            t += 7.5 + rng.uniform(0.0, 1.0)
        t += 4.0
    n = len(cues)
    n_rej = max(1, int(round(n * rng.uniform(0.01, 0.045))))
    rejected = np.zeros(n, dtype=bool)
    rejected[rng.choice(n, n_rej, replace=False)] = True
    cues_arr = np.asarray(cues)
    for i in np.flatnonzero(rejected):  # 1023 on the sample of the trial's 768
        ann.append(((cues_arr[i] - 2 * SFREQ) / SFREQ, 6.0, "1023"))
    ann.sort(key=lambda a: (a[0], a[2] != "768"))
    s = lambda sec: int(round(sec * SFREQ))  # noqa: E731
    return Timeline(
        n_times=s(t + 2.0),
        onsets=[a[0] for a in ann], durations=[a[1] for a in ann], descriptions=[a[2] for a in ann],
        cues=cues_arr, classes=np.asarray(classes), rejected=rejected,
        eyes_closed=(s(1.0 + block + 1.0), s(1.0 + 2 * block + 1.0)),
        eye_moves=(s(1.0 + 2 * (block + 1.0)), s(1.0 + 3 * block + 2.0)),
    )
