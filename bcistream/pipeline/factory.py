"""The factory of the one decoding pipeline and accessors the streaming engine uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from bcistream.data.profiles import Profile, load_profile
from bcistream.errors import ProfileError
from bcistream.pipeline.csp import CSP
from bcistream.pipeline.filter import CausalBandpass
from bcistream.pipeline.params import check_params

__all__ = ["DEFAULT_PARAMS", "csp_filters", "default_n_components", "make_pipeline", "pipeline_band",
           "pipeline_profile", "power_to_features", "profile_from"]

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


def default_n_components(n_channels: int, most: int = 6) -> int:
    """``min(most, n_channels)``, made even when above 1: CSP filters come in pairs (both ends of
    the eigenvalue spectrum), so an odd count would keep one end's filter without its partner."""
    n = min(int(most), int(n_channels))
    return n - 1 if n > 1 and n % 2 else n


def profile_from(
    info: Any = None,
    *,
    sfreq: float | None = None,
    ch_names: Sequence[str] | None = None,
    classes: Sequence[str] | Mapping[str, str] | None = None,
    base: Profile | str | None = None,
) -> Profile:
    """A profile for `make_pipeline` from an `mne.Info`, or from ``sfreq`` and ``ch_names``.

    Parameters
    ----------
    info : mne.Info, optional
        ``info["sfreq"]`` becomes the profile's rate; its channels: those of ``base``, in its
        order, when the Info holds them all and ``base`` is given or the Info names them as the
        base profile's files do (its ``rename``: a 2a file; EOG channels typed ``eeg`` stay out);
        else its EEG channels (``pick_types(eeg=True)``; all channels when none is typed EEG).
    sfreq : float, optional
        Sampling rate in Hz (instead of ``info``).
    ch_names : sequence of str, optional
        Channel names in decoding order (instead of ``info``).
    classes : sequence or mapping of str, optional
        Class names in order (``["left", "right"]``) or marker text → class name; default: the
        base profile's classes.
    base : Profile or str, optional
        Band, window, offset, classes and units come from this profile (default: those of
        ``bci-iv-2a``, without its file quirks: reject and unknown-cue codes, missing-value marker).

    Raises
    ------
    ProfileError
        Neither ``info`` nor ``sfreq`` + ``ch_names``, or both; a band above Nyquist; duplicate
        channel names.
    """
    import mne

    if (info is None) == (sfreq is None and ch_names is None):
        raise ProfileError("give either info (an mne.Info) or sfreq and ch_names")
    if info is not None:
        if not isinstance(info, mne.Info):
            raise ProfileError(f"info must be an mne.Info, got {type(info).__name__}")
        names, rename = _info_channels(info, load_profile(base), chosen=base is not None)
        rate = float(info["sfreq"])
    else:
        if sfreq is None or not ch_names:
            raise ProfileError("sfreq and ch_names go together: give both (or info)")
        names, rate, rename = [str(c) for c in ch_names], float(sfreq), {}
    prof = load_profile(base)
    fields = prof.model_dump()
    fields.update(name=f"{prof.name}-custom" if base is not None else "custom", channels=tuple(names),
                  sfreq=rate, rename=rename)
    if base is None:  # the 2a files' own quirks (reject code, missing-value marker) do not carry over
        fields.update(reject_marker=None, unknown_cue=None, missing_value=None)
    if classes is not None:
        fields["classes"] = (dict(classes) if isinstance(classes, Mapping)
                             else {str(c): str(c) for c in classes})
        fields["markers"] = {}  # the base profile's extra marker texts name its own classes
    high = min(fields["band"][1], 0.45 * rate)  # keep the band below Nyquist for slow rigs
    if high != fields["band"][1]:
        fields["band"] = (fields["band"][0], high)
    # One line naming the field (a raw pydantic error is several lines with a URL).
    given = "info" if info is not None else "sfreq/ch_names"
    return Profile.from_dict(fields, source=f"make_pipeline ({given})")


def _info_channels(info: Any, prof: Profile, chosen: bool) -> tuple[list[str], dict[str, str]]:
    """The channels of ``info`` to decode, and the renames that name them.

    The profile decides when ``info`` holds every one of its channels and the profile was
    ``chosen`` by the caller, or the Info names them as the profile's files do (``prof.rename``:
    a 2a file): its channels in its order, whatever the file's types say (2a files type their EOG
    channels ``eeg``). Otherwise the EEG-typed channels in the Info's order (all channels when
    none is typed EEG): a 64-channel cap that happens to hold the 2a names keeps all 64.
    """
    import mne

    in_files = {prof.rename.get(name, name): name for name in info["ch_names"]}
    if all(ch in in_files for ch in prof.channels) and (
            chosen or (prof.rename and all(in_files[ch] in prof.rename for ch in prof.channels))):
        return list(prof.channels), {in_files[ch]: ch for ch in prof.channels if in_files[ch] != ch}
    picks = mne.pick_types(info, eeg=True, exclude=[])
    names = [info["ch_names"][i] for i in picks] if len(picks) else list(info["ch_names"])
    return names, {}


def make_pipeline(
    profile: Profile | str | None = None,
    *,
    info: Any = None,
    sfreq: float | None = None,
    ch_names: Sequence[str] | None = None,
    classes: Sequence[str] | Mapping[str, str] | None = None,
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
    info : mne.Info, optional
        Channels and rate from an MNE ``Info`` instead (`profile_from`; ``profile`` then gives
        the band, window and classes).
    sfreq, ch_names : optional
        Rate (Hz) and channel names in decoding order, instead of ``info``.
    classes : sequence or mapping of str, optional
        Class names (or marker text → class) with ``info`` / ``sfreq``.
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
        Folds (2..20) of the sigmoid calibration that turns SVM scores into class probabilities.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; steps ``filter`` (`CausalBandpass`), ``csp`` (`bcistream.pipeline.csp.CSP`:
        `mne.decoding.CSP`, fitted without its INFO log lines) and ``clf``:
        an SVC inside `CalibratedClassifierCV` (``ensemble=False``), so labels are the argmax of
        the reported probabilities (``SVC(probability=True)`` is deprecated and its labels could
        disagree with its probabilities). SVC parameters are ``clf__estimator__C`` etc.

    Raises
    ------
    ParameterError
        A value not allowed (`bcistream.pipeline.params.PARAMS`: ``C > 0``, ``kernel`` linear or
        rbf, ``n_components`` in ``1..n_channels``, band edges below Nyquist and in order, ...),
        named with the value given, before scikit-learn sees it.
    ProfileError
        ``info`` with ``sfreq``/``ch_names``, or a profile that cannot be made.

    Examples
    --------
    >>> pipe = make_pipeline(sfreq=250.0, ch_names=["C3", "Cz", "C4"], classes=["left", "right"])
    >>> pipe = make_pipeline(info=raw.info, classes=["left", "right"])  # doctest: +SKIP
    """
    if info is not None or sfreq is not None or ch_names is not None:
        prof = profile_from(info, sfreq=sfreq, ch_names=ch_names, classes=classes, base=profile)
    elif classes is not None:
        raise ProfileError("classes goes with info or sfreq/ch_names; a profile carries its own classes")
    else:
        prof = load_profile(profile)
    if n_components is None:
        n_components = default_n_components(prof.n_channels)
    check_params({"n_components": n_components, "log": log, "reg": reg, "C": C, "kernel": kernel,
                  "gamma": gamma, "l_freq": l_freq, "h_freq": h_freq, "order": order,
                  "calibration_folds": calibration_folds}, prof, "make_pipeline")
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
