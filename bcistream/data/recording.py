"""The in-memory recording every loader returns: profile-ordered samples plus labelled cues."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bcistream.data.profiles import Profile

__all__ = ["Cue", "Recording"]


@dataclass(frozen=True)
class Cue:
    """One cue of a recording.

    Parameters
    ----------
    sample : int
        Sample index of the cue onset.
    label : str or None
        Class name, or ``None`` when the class is unknown (unlabelled evaluation session).
    rejected : bool
        True when the trial was marked as rejected (excluded from fitting by default).
    """

    sample: int
    label: str | None
    rejected: bool = False


@dataclass(frozen=True, eq=False)
class Recording:
    """A continuous recording in the profile's channel order.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Samples in volts, rows in ``profile.channels`` order. NaN marks missing samples.
    profile : Profile
        The profile the recording was read with.
    cues : tuple of Cue
        Cues in time order.
    source : str
        Where it came from (a path, URL or description).
    notes : tuple of str
        Reader warnings the user allowed (``--allow-warnings``), shown by ``info``.
    """

    data: np.ndarray
    profile: Profile
    cues: tuple[Cue, ...]
    source: str
    notes: tuple[str, ...] = ()

    @property
    def sfreq(self) -> float:
        """Sampling rate in Hz."""
        return self.profile.sfreq

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.sfreq

    @property
    def n_missing(self) -> int:
        """Number of samples marked missing (NaN in any channel)."""
        return int(np.isnan(self.data).any(axis=0).sum())

    def class_counts(self) -> dict[str, int]:
        """Number of cues per class name (``'unknown'`` for unlabelled cues, rejected included).

        Keys in the profile's class order (then ``'unknown'``), as decisions and reports list
        classes: never alphabetical, never order of appearance.
        """
        counts: dict[str, int] = {}
        for cue in self.cues:
            key = cue.label or "unknown"
            counts[key] = counts.get(key, 0) + 1
        order = {name: i for i, name in enumerate(self.profile.class_names)}
        return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
