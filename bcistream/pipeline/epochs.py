"""Training epochs: the causal filter runs over the CONTINUOUS recording, then windows are cut.

An epoch cut here holds exactly the samples the live engine holds for the same window: both carry
the filter state from the start of the signal. Missing stretches (NaN) split the recording into
segments that are each filtered from zero state, as the engine resets a stream after a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.recording import Recording
from bcistream.errors import ProfileError
from bcistream.pipeline.filter import CausalBandpass
from bcistream.pipeline.filterbank import CausalFilterBank

__all__ = ["Epochs", "epochs_from_recording", "filter_recording"]


@dataclass(frozen=True)
class Epochs:
    """Filtered windows cut at cue + offset.

    Parameters
    ----------
    X : ndarray, shape (n_trials, n_channels, window)
        Filtered samples.
    y : ndarray of object, shape (n_trials,)
        Class names (``None`` for cues of unknown class).
    cue_index : ndarray of int
        Index of each trial's cue in ``recording.cues``.
    window_end : ndarray of int
        Exclusive end sample of each window in the recording.
    excluded : dict
        Cue index -> reason, for cues left out (rejected, too close to the end, missing samples).
    """

    X: np.ndarray
    y: np.ndarray
    cue_index: np.ndarray
    window_end: np.ndarray
    excluded: dict[int, str] = field(default_factory=dict)


def _filter_step(pipe: Pipeline | CausalBandpass | CausalFilterBank) -> CausalBandpass:
    step = pipe[0] if isinstance(pipe, Pipeline) else pipe
    if not hasattr(step, "sos_"):
        step.fit()
    return step


def filter_recording(pipe: Pipeline | CausalBandpass | CausalFilterBank,
                     recording: Recording) -> np.ndarray:
    """Filter a whole recording causally; each NaN-free segment starts from zero state.

    The filter is the pipeline's first step (a `CausalBandpass`, or a `CausalFilterBank` whose
    bands are stacked: ``n_bands * n_channels`` rows).

    Returns
    -------
    ndarray, shape (n_outputs, n_samples)
        Filtered samples; NaN where the recording is missing.
    """
    filt = _filter_step(pipe)
    data = recording.data
    bad = np.isnan(data).any(axis=0)
    n_out = data.shape[0] * (len(filt.sos_) if isinstance(filt, CausalFilterBank) else 1)
    out = np.full((n_out, data.shape[1]), np.nan)
    edges = np.flatnonzero(np.diff(np.concatenate([[1], bad.astype(np.int8), [1]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        out[:, start:stop], _ = filt.filter_continuous(data[:, start:stop])
    return out


def epochs_from_recording(
    pipe: Pipeline | CausalBandpass,
    recording: Recording,
    *,
    include_rejected: bool = False,
    labelled_only: bool = True,
    filtered: np.ndarray | None = None,
) -> Epochs:
    """Cut the profile's window after every usable cue of the continuously filtered recording.

    Parameters
    ----------
    pipe : Pipeline or CausalBandpass
        The pipeline whose filter is used (fitted or not: the filter learns nothing).
    recording : Recording
    include_rejected : bool
        Keep trials marked rejected (default: excluded, and reported in ``excluded``).
    labelled_only : bool
        Drop cues of unknown class.
    filtered : ndarray, optional
        The output of `filter_recording` when the caller already has it.

    Returns
    -------
    Epochs
    """
    prof = recording.profile
    win, off = prof.window_samples, prof.offset_samples
    starts = np.array([c.sample for c in recording.cues])
    if len(starts) > 1 and off + win > np.diff(starts).min():
        raise ProfileError(
            f"profile '{prof.name}': window_s={prof.window_s:g} s at offset_s={prof.offset_s:g} s is "
            f"longer than the trial ({np.diff(starts).min() / prof.sfreq:g} s between cues in "
            f"{recording.source}); windows would overlap the next trial"
        )
    if filtered is None:
        filtered = filter_recording(pipe, recording)
    keep, ends, excluded = [], [], {}
    for i, cue in enumerate(recording.cues):
        start = cue.sample + off
        end = start + win
        if cue.rejected and not include_rejected:
            excluded[i] = "rejected trial"
        elif cue.label is None and labelled_only:
            excluded[i] = "unknown class"
        elif start < 0 or end > recording.n_samples:
            excluded[i] = "window outside the recording"
        elif np.isnan(filtered[:, start:end]).any():
            excluded[i] = "missing samples in the window"
        else:
            keep.append(i)
            ends.append(end)
    n_ch = filtered.shape[0]
    X = np.empty((len(keep), n_ch, win))
    for k, end in enumerate(ends):
        X[k] = filtered[:, end - win : end]
    y = np.array([recording.cues[i].label for i in keep], dtype=object)
    return Epochs(X=X, y=y, cue_index=np.asarray(keep, dtype=int),
                  window_end=np.asarray(ends, dtype=int), excluded=excluded)
