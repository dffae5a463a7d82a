"""The factory of the one decoding pipeline and accessors the streaming engine uses."""

from __future__ import annotations

from typing import Any

import numpy as np
from mne.decoding import CSP
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from bcistream.data.profiles import Profile, load_profile
from bcistream.errors import ProfileError
from bcistream.pipeline.filter import CausalBandpass

__all__ = ["DEFAULT_PARAMS", "csp_filters", "default_n_components", "make_pipeline", "pipeline_band",
           "pipeline_profile", "power_to_features"]

#: Defaults of `make_pipeline`, also the search space anchors of tuning.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_components": None,  # min(6, n_channels), even: see default_n_components
    "log": True,
    "reg": None,
    "C": 1.0,
    "kernel": "linear",
    "gamma": "scale",
    "l_freq": None,
    "h_freq": None,
    "order": 4,
}


def default_n_components(n_channels: int) -> int:
    """``min(6, n_channels)``, made even when above 1: CSP filters come in pairs (both ends of the
    eigenvalue spectrum), so an odd count would keep one end's filter without its partner."""
    n = min(6, int(n_channels))
    return n - 1 if n > 1 and n % 2 else n


def make_pipeline(
    profile: Profile | str | None = None,
    *,
    n_components: int | None = None,
    log: bool = True,
    reg: float | str | None = None,
    C: float = 1.0,
    kernel: str = "linear",
    gamma: float | str = "scale",
    l_freq: float | None = None,
    h_freq: float | None = None,
    order: int = 4,
    calibration_folds: int = 3,
) -> Pipeline:
    """Build the decoding pipeline ``filter -> csp -> clf``.

    Parameters
    ----------
    profile : Profile, str or None
        Dataset profile (default ``bci-iv-2a``); stored in the ``filter`` step.
    n_components : int or None
        CSP components, ``1 <= n_components <= n_channels``; ``None`` takes
        `default_n_components` (``min(6, n_channels)``, even).
    log : bool
        Log-power CSP features (``True``) or standardised power (``False``).
    reg : float, str or None
        CSP covariance regularisation (see `mne.decoding.CSP`).
    C, kernel, gamma : SVC parameters.
    l_freq, h_freq : float or None
        Band edges (``None`` takes the profile's band).
    order : int
        Butterworth order.
    calibration_folds : int
        Folds of the sigmoid calibration that turns SVM scores into class probabilities.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; steps ``filter`` (`CausalBandpass`), ``csp`` (`mne.decoding.CSP`) and ``clf``:
        an SVC inside `CalibratedClassifierCV` (``ensemble=False``), so labels are the argmax of
        the reported probabilities (``SVC(probability=True)`` is deprecated and its labels could
        disagree with its probabilities). SVC parameters are ``clf__estimator__C`` etc.

    Raises
    ------
    ProfileError
        ``n_components`` outside ``1..n_channels``.
    """
    prof = load_profile(profile)
    if n_components is None:
        n_components = default_n_components(prof.n_channels)
    if not 1 <= int(n_components) <= prof.n_channels:
        raise ProfileError(
            f"n_components={n_components} is out of range: profile '{prof.name}' has "
            f"{prof.n_channels} channels, so 1 <= n_components <= {prof.n_channels}"
        )
    return Pipeline(
        [
            ("filter", CausalBandpass(prof.to_dict(), l_freq=l_freq, h_freq=h_freq, order=order)),
            ("csp", CSP(n_components=int(n_components), log=log if log else False, reg=reg)),
            (
                "clf",
                CalibratedClassifierCV(
                    SVC(C=C, kernel=kernel, gamma=gamma),
                    method="sigmoid",
                    cv=int(calibration_folds),
                    ensemble=False,
                ),
            ),
        ]
    )


def pipeline_band(pipe: Pipeline) -> tuple[float, float]:
    """The pass band (Hz) the fitted pipeline's causal filter uses (the profile's when not set;
    a filter bank's span from its lowest to its highest edge)."""
    filt = pipe[0]
    if not hasattr(filt, "band_"):
        filt.fit()
    low, high = filt.band_
    return float(low), float(high)


def pipeline_profile(pipe: Pipeline) -> Profile:
    """The dataset profile a pipeline carries (in its first step, the causal filter)."""
    return pipe[0].get_profile()


def csp_filters(pipe: Pipeline) -> np.ndarray:
    """The spatial filters the fitted CSP step applies, shape (n_components, n_channels)."""
    csp = pipe.named_steps["csp"]
    return np.asarray(csp.filters_[: csp.n_components])


def power_to_features(pipe: Pipeline, power: np.ndarray) -> np.ndarray:
    """Turn mean CSP-space power (n, n_components) into the CSP step's features.

    Mirrors ``CSP.transform`` after its ``(X ** 2).mean(axis=2)``: log, or standardisation with
    the fitted mean and std. The streaming engine computes the power incrementally and calls this.
    """
    csp = pipe.named_steps["csp"]
    if csp.log is None or csp.log:
        return np.log(power)
    return (power - csp.mean_) / csp.std_
