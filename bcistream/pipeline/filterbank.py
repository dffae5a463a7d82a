"""A bank of causal bandpass filters: one `CausalBandpass` per band, outputs stacked band by band."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from bcistream.data.profiles import Profile, load_profile
from bcistream.pipeline.filter import CausalBandpass

__all__ = ["DEFAULT_BANDS", "CausalFilterBank"]

#: 4-Hz bands over 4-40 Hz, as in filter-bank CSP (Ang et al. 2008, BCI IV 2a winner).
DEFAULT_BANDS: tuple[tuple[float, float], ...] = tuple((f, f + 4.0) for f in range(4, 40, 4))


class CausalFilterBank(TransformerMixin, BaseEstimator):
    """Several `CausalBandpass` filters side by side; band ``b`` fills output rows ``b*C:(b+1)*C``.

    Same interface as `CausalBandpass` (``transform`` on epochs from zero state,
    ``filter_continuous`` with carried state), so `filter_recording` and `epochs_from_recording`
    treat it alike; the outputs just have ``n_bands * n_channels`` rows.

    Parameters
    ----------
    profile : dict or None
        The dataset profile as a dict; ``None`` means ``bci-iv-2a``.
    bands : sequence of (float, float) or None
        Band edges in Hz; ``None`` takes `DEFAULT_BANDS` (those below Nyquist).
    order : int
        Butterworth order of every band.
    """

    def __init__(self, profile: dict[str, Any] | None = None,
                 bands: tuple[tuple[float, float], ...] | None = None, order: int = 4) -> None:
        self.profile = profile
        self.bands = bands
        self.order = order

    def get_profile(self) -> Profile:
        """The profile as a validated `Profile`."""
        return load_profile(None) if self.profile is None else Profile.from_dict(self.profile)

    def fit(self, X: np.ndarray | None = None, y: Any = None) -> CausalFilterBank:
        """Design every band's filter (nothing is learnt from data).

        Raises
        ------
        ValueError
            No band, or a band outside ``0 < l_freq < h_freq < sfreq / 2``.
        """
        prof = self.get_profile()
        bands = DEFAULT_BANDS if self.bands is None else tuple(self.bands)
        if self.bands is None:
            bands = tuple(b for b in bands if b[1] < prof.sfreq / 2)
        if not bands:
            raise ValueError("bands must hold at least one (l_freq, h_freq) pair")
        self.filters_ = [CausalBandpass(self.profile, float(lo), float(hi), self.order).fit()
                         for lo, hi in bands]
        self.bands_ = tuple((float(lo), float(hi)) for lo, hi in bands)
        self.band_ = (min(b[0] for b in self.bands_), max(b[1] for b in self.bands_))  # the span
        self.sos_ = [f.sos_ for f in self.filters_]
        self.sfreq_ = prof.sfreq
        self.window_ = prof.window_samples
        self.n_channels_ = prof.n_channels
        if X is not None:
            self.filters_[0]._check_epochs(X)
        return self

    @property
    def n_bands(self) -> int:
        """Number of bands (after `fit`)."""
        check_is_fitted(self, "filters_")
        return len(self.filters_)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Filter epochs from zero state in every band; shape (n_trials, n_bands * C, window_)."""
        check_is_fitted(self, "filters_")
        return np.concatenate([f.transform(X) for f in self.filters_], axis=1)

    def filter_continuous(self, data: np.ndarray, zi: list[np.ndarray] | None = None
                          ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Filter continuous samples in every band, carrying one state per band.

        Returns
        -------
        out : ndarray, shape (n_bands * n_channels, n_samples)
        zf : list of ndarray
        """
        check_is_fitted(self, "filters_")
        zi = zi if zi is not None else [None] * len(self.filters_)
        outs, zfs = [], []
        for f, z in zip(self.filters_, zi, strict=True):
            y, zf = f.filter_continuous(data, z)
            outs.append(y)
            zfs.append(zf)
        return np.concatenate(outs, axis=0), zfs
