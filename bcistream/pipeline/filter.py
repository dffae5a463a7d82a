"""The causal IIR bandpass: one transformer for epochs (zero state) and continuous data (carried state)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from bcistream.data.profiles import Profile, load_profile

__all__ = ["CausalBandpass"]


class CausalBandpass(TransformerMixin, BaseEstimator):
    """Causal Butterworth bandpass in second-order sections, carrying the dataset profile.

    ``transform`` filters epochs from zero state and keeps the LAST ``window`` samples of each:
    samples before them are pre-roll that lets the filter transient die out. The live engine and
    the training epochs use :meth:`filter_continuous` with state carried across calls, so the same
    coefficients (``sos_``) serve every path.

    Parameters
    ----------
    profile : dict or None
        The dataset profile as a dict (``Profile.to_dict()``); ``None`` means ``bci-iv-2a``.
    l_freq, h_freq : float or None
        Band edges in Hz; ``None`` takes the profile's band.
    order : int
        Butterworth order (the bandpass has ``order`` second-order sections).
    """

    def __init__(
        self,
        profile: dict[str, Any] | None = None,
        l_freq: float | None = None,
        h_freq: float | None = None,
        order: int = 4,
    ) -> None:
        self.profile = profile
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.order = order

    def get_profile(self) -> Profile:
        """The profile as a validated `Profile`."""
        if self.profile is None:
            return load_profile(None)
        return Profile.from_dict(self.profile)

    def fit(self, X: np.ndarray | None = None, y: Any = None) -> CausalBandpass:
        """Design the filter (it learns nothing from data; ``X`` is only checked)."""
        prof = self.get_profile()
        low = prof.band[0] if self.l_freq is None else float(self.l_freq)
        high = prof.band[1] if self.h_freq is None else float(self.h_freq)
        if not 0 < low < high < prof.sfreq / 2:
            raise ValueError(
                f"band edges must satisfy 0 < l_freq < h_freq < {prof.sfreq / 2:g} Hz, "
                f"got l_freq={low:g}, h_freq={high:g}"
            )
        if int(self.order) < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")
        self.sos_ = butter(int(self.order), [low, high], btype="bandpass", fs=prof.sfreq,
                           output="sos")
        self.band_ = (low, high)
        self.sfreq_ = prof.sfreq
        self.window_ = prof.window_samples
        self.n_channels_ = prof.n_channels
        if X is not None:
            self._check_epochs(X)
        return self

    def _check_epochs(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3:
            raise ValueError(f"expected epochs of shape (n_trials, n_channels, n_times), got {X.shape}")
        if X.shape[1] != self.n_channels_:
            raise ValueError(f"expected {self.n_channels_} channels, got {X.shape[1]}")
        if X.shape[2] < self.window_:
            raise ValueError(f"expected at least {self.window_} samples per trial, got {X.shape[2]}")
        if not np.isfinite(X).all():
            raise ValueError("epochs contain NaN or Inf")
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Filter epochs from zero state; return the last ``window_`` samples of each.

        Parameters
        ----------
        X : ndarray, shape (n_trials, n_channels, n_times)
            Raw epochs, ``n_times >= window_``; leading extra samples are pre-roll.

        Returns
        -------
        ndarray, shape (n_trials, n_channels, window_)
        """
        check_is_fitted(self, "sos_")
        X = self._check_epochs(X)
        return sosfilt(self.sos_, X, axis=-1)[..., -self.window_ :]

    def initial_state(self, n_channels: int | None = None) -> np.ndarray:
        """Zero filter state for continuous filtering, shape (n_sections, n_channels, 2)."""
        check_is_fitted(self, "sos_")
        n = self.n_channels_ if n_channels is None else n_channels
        return np.zeros((self.sos_.shape[0], n, 2))

    def steady_state(self, first: np.ndarray) -> np.ndarray:
        """Filter state as if the signal had been ``first`` (one sample per channel) forever."""
        check_is_fitted(self, "sos_")
        zi = sosfilt_zi(self.sos_)  # (n_sections, 2)
        return zi[:, None, :] * np.asarray(first, dtype=np.float64)[None, :, None]

    def filter_continuous(
        self, data: np.ndarray, zi: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Filter continuous samples, carrying the state.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_samples)
        zi : ndarray, shape (n_sections, n_channels, 2), optional
            State from the previous call; zero state when omitted.

        Returns
        -------
        out : ndarray, shape (n_channels, n_samples)
        zf : ndarray
            The state to pass to the next call.
        """
        check_is_fitted(self, "sos_")
        data = np.asarray(data, dtype=np.float64)
        if zi is None:
            zi = self.initial_state(data.shape[0])
        return sosfilt(self.sos_, data, axis=-1, zi=zi)
