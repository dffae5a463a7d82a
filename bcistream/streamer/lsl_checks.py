"""Checking an LSL stream against the model's profile (pure: works on plain metadata)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bcistream.data.profiles import Profile
from bcistream.errors import ProfileError

__all__ = ["channel_order"]


def channel_order(name: str, n_channels: int, sfreq: float, labels: Sequence[str | None] | None,
                  profile: Profile) -> np.ndarray | None:
    """Rows of the stream to take, in profile channel order; ``None`` when the order is already right.

    Labels are compared after the profile's ``rename`` (``EEG-Fz`` -> ``Fz``). A stream without
    labels must have exactly the profile's channel count. Extra labelled channels (EOG) are dropped.

    Raises
    ------
    ProfileError
        Wrong rate, wrong channel count, or profile channels missing from the stream's labels.
    """
    if abs(float(sfreq) - profile.sfreq) > 1e-6:
        raise ProfileError(f"LSL stream {name!r} is sampled at {sfreq:g} Hz but the model's profile "
                           f"'{profile.name}' expects {profile.sfreq:g} Hz")
    usable = labels is not None and len(labels) == n_channels and all(labels)
    if not usable:
        if n_channels != profile.n_channels:
            raise ProfileError(f"LSL stream {name!r} has {n_channels} channels but the model's profile "
                               f"'{profile.name}' expects {profile.n_channels} "
                               f"({', '.join(profile.channels[:4])}, ...)")
        return None
    renamed = [profile.rename.get(str(lab), str(lab)) for lab in labels]
    missing = [ch for ch in profile.channels if ch not in renamed]
    if missing:
        if n_channels == profile.n_channels and not set(renamed) & set(profile.channels):
            # Labels that share nothing with the profile (e.g. "ch1".."ch22"): trust the order.
            return None
        raise ProfileError(f"LSL stream {name!r} lacks channel(s) {', '.join(missing)} of profile "
                           f"'{profile.name}' (stream channels: {', '.join(renamed)})")
    order = np.array([renamed.index(ch) for ch in profile.channels])
    if len(order) == n_channels and np.array_equal(order, np.arange(n_channels)):
        return None
    return order
