"""sklearn steps the decoders need beyond mne / pyriemann / sklearn: per-band CSP and MI selection."""

from __future__ import annotations

from typing import Any

import numpy as np
from mne.decoding import CSP
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_selection import mutual_info_classif
from sklearn.utils.validation import check_is_fitted

__all__ = ["BandCSP", "MutualInfoSelect"]


class BandCSP(TransformerMixin, BaseEstimator):
    """One `mne.decoding.CSP` per band of a `CausalFilterBank` output; features concatenated.

    Parameters
    ----------
    n_bands : int
        Bands stacked in the input rows (band ``b`` = rows ``b*C:(b+1)*C``).
    n_components : int
        CSP components per band.
    log : bool
        Log-power features (else standardised power), as in `mne.decoding.CSP`.
    reg : float, str or None
        CSP covariance regularisation.
    """

    def __init__(self, n_bands: int = 9, n_components: int = 4, log: bool = True,
                 reg: float | str | None = None) -> None:
        self.n_bands = n_bands
        self.n_components = n_components
        self.log = log
        self.reg = reg

    def _split(self, X: np.ndarray) -> list[np.ndarray]:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3 or X.shape[1] % int(self.n_bands):
            raise ValueError(f"expected (n_trials, n_bands * n_channels, n_times) with n_bands="
                             f"{self.n_bands}, got shape {X.shape}")
        return np.split(X, int(self.n_bands), axis=1)

    def fit(self, X: np.ndarray, y: Any) -> BandCSP:
        """Fit one CSP per band."""
        self.csps_ = [CSP(n_components=int(self.n_components), log=self.log if self.log else False,
                          reg=self.reg).fit(part, y) for part in self._split(X)]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features of shape (n_trials, n_bands * n_components), band by band."""
        check_is_fitted(self, "csps_")
        return np.concatenate([c.transform(p) for c, p in zip(self.csps_, self._split(X), strict=True)],
                              axis=1)


class MutualInfoSelect(TransformerMixin, BaseEstimator):
    """Keep the ``k`` features of highest mutual information with the class (deterministic).

    Parameters
    ----------
    k : int or "all"
        Features kept; ``"all"`` keeps every feature.
    random_state : int
        Seed of the nearest-neighbour MI estimate's jitter (`mutual_info_classif`).
    """

    def __init__(self, k: int | str = 8, random_state: int = 0) -> None:
        self.k = k
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any) -> MutualInfoSelect:
        """Score the features and remember which to keep (``support_``, bool mask)."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[1]
        if self.k == "all" or int(self.k) >= n:
            self.support_ = np.ones(n, dtype=bool)
            self.scores_ = np.full(n, np.nan)
            return self
        if int(self.k) < 1:
            raise ValueError(f"k must be >= 1 or 'all', got {self.k!r}")
        self.scores_ = mutual_info_classif(X, y, random_state=self.random_state)
        keep = np.argsort(-self.scores_, kind="stable")[: int(self.k)]
        self.support_ = np.zeros(n, dtype=bool)
        self.support_[keep] = True
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The kept columns."""
        check_is_fitted(self, "support_")
        return np.asarray(X)[:, self.support_]
