"""Refuse recordings that hold no usable signal: flat or non-finite channels.

An all-zero or constant channel makes every covariance singular (CSP fails deep inside sklearn
with a long traceback); an infinite value poisons the causal filter for the rest of the recording.
Both are refused here, where the recording enters, in one line naming the file and the channels.
NaN is the project's mark of a missing sample (the filter restarts after it), so NaN alone is
allowed unless a channel holds nothing else.
"""

from __future__ import annotations

import numpy as np

from bcistream.errors import DataError

__all__ = ["check_signal"]


def _names(channels: list[str], limit: int = 8) -> str:
    more = f" (+{len(channels) - limit} more)" if len(channels) > limit else ""
    return ", ".join(channels[:limit]) + more


def check_signal(data: np.ndarray, channels: tuple[str, ...] | list[str], source: str) -> None:
    """Raise `DataError` when a channel is non-finite (±inf, or NaN throughout) or flat.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Samples (any unit); NaN marks missing samples.
    channels : sequence of str
        Channel names, one per row.
    source : str
        The file or stream named in the message.
    """
    data = np.asarray(data)
    infinite = [ch for ch, row in zip(channels, data, strict=True) if np.isinf(row).any()]
    if infinite:
        raise DataError(f"{source}: infinite values in channel(s) {_names(infinite)}; "
                        "the recording is refused")
    finite = np.isfinite(data)
    empty = [ch for ch, ok in zip(channels, finite.any(axis=1), strict=True) if not ok]
    if empty:
        raise DataError(f"{source}: channel(s) {_names(empty)} hold no finite sample (all NaN); "
                        "the recording is refused")
    flat = []
    for ch, row, ok in zip(channels, data, finite, strict=True):
        values = row[ok]
        if values.max() - values.min() == 0.0:
            flat.append(ch)
    if flat:
        what = "all" if len(flat) == len(channels) else f"{len(flat)} of {len(channels)}"
        raise DataError(f"{source}: flat signal (constant, e.g. all zero) in {what} channels: "
                        f"{_names(flat)}; the recording is refused")
