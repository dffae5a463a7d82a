"""MNE's CSP, quiet: ``mne.decoding.CSP.fit`` logs ~10 INFO lines (rank, covariance) per fit, hundreds
in a grid search or a CV; bcistream fits it at MNE's WARNING level unless asked for more."""

from __future__ import annotations

import logging

import numpy as np
from mne.decoding import CSP as _MneCSP
from mne.utils import use_log_level

__all__ = ["CSP"]


class CSP(_MneCSP):
    """`mne.decoding.CSP` whose ``fit`` is quiet (same parameters, same fitted attributes).

    MNE's own INFO lines come back when the ``bcistream`` logger is at DEBUG
    (``BCISTREAM_LOG_LEVEL=DEBUG`` on the command line,
    ``logging.getLogger("bcistream").setLevel("DEBUG")`` in Python).
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> CSP:
        """Fit the spatial filters; see `mne.decoding.CSP.fit`."""
        loud = logging.getLogger("bcistream").isEnabledFor(logging.DEBUG)
        with use_log_level("INFO" if loud else "WARNING"):
            super().fit(X, y)
        return self
