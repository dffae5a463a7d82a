"""The decoders by name: each an sklearn `Pipeline` factory with its parameters and search space.

The causal filter is always the first step (`CausalBandpass`, or `CausalFilterBank` of them), the
one source of truth for preprocessing; `compile_streaming` turns the fitted pipeline into its
streaming twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from bcistream.data.profiles import Profile, load_profile
from bcistream.decoders.steps import BandCSP, MutualInfoSelect
from bcistream.errors import ParameterError, ProfileError
from bcistream.pipeline.factory import default_n_components, make_pipeline
from bcistream.pipeline.filter import CausalBandpass
from bcistream.pipeline.filterbank import CausalFilterBank
from bcistream.pipeline.params import Param, check_params, choice, register_param

__all__ = ["DECODERS", "DEFAULT_DECODER", "DecoderSpec", "build_pipeline", "decoder_params", "decoder_spec",
           "make_decoder"]

#: The decoder trained when none is named (see README, "Choosing the decoder").
DEFAULT_DECODER = "csp-svm"


@dataclass(frozen=True)
class DecoderSpec:
    """One registered decoder.

    Attributes
    ----------
    name : str
    summary : str
    defaults : dict
        Its parameters and their defaults (the keys ``--set`` accepts for it).
    build : callable
        ``build(profile, **params) -> Pipeline`` (unfitted).
    space : dict
        Tuning search space: name -> ("int", lo, hi) | ("float", lo, hi, log) | ("cat", choices).
    max_components : int
        Default ``n_components`` (when it is ``None``): ``min(max_components, n_channels)``, even,
        so that the default fits small montages too.
    """

    name: str
    summary: str
    defaults: dict[str, Any]
    build: Callable[..., Pipeline]
    space: dict[str, tuple] = field(default_factory=dict)
    max_components: int = 6


def _svm(C: float, kernel: str = "linear", gamma: float | str = "scale",
         calibration_folds: int = 3) -> CalibratedClassifierCV:
    # Calibrated SVM, ensemble=False: labels are the argmax of the reported probabilities.
    return CalibratedClassifierCV(SVC(C=C, kernel=kernel, gamma=gamma), method="sigmoid",
                                  cv=int(calibration_folds), ensemble=False)


_FILTER = {"l_freq": None, "h_freq": None, "order": 4}
_CSP = {"n_components": None, "log": True, "reg": None}  # None: min(6, channels), even


def _csp_svm(profile: Profile, **p: Any) -> Pipeline:
    return make_pipeline(profile, **p)


def _csp_lda(profile: Profile, *, n_components: int, log: bool, reg: Any, l_freq: Any, h_freq: Any,
             order: int) -> Pipeline:
    pipe = make_pipeline(profile, n_components=n_components, log=log, reg=reg, l_freq=l_freq,
                         h_freq=h_freq, order=order)
    pipe.steps[-1] = ("clf", LinearDiscriminantAnalysis())
    return pipe


def _covariances(estimator: str) -> Any:
    from pyriemann.estimation import Covariances

    return Covariances(estimator=estimator)


def _ts(profile: Profile, clf: Any, *, estimator: str, l_freq: Any, h_freq: Any, order: int) -> Pipeline:
    from pyriemann.tangentspace import TangentSpace

    return Pipeline([
        ("filter", CausalBandpass(profile.to_dict(), l_freq=l_freq, h_freq=h_freq, order=order)),
        ("cov", _covariances(estimator)),
        ("ts", TangentSpace(metric="riemann")),
        ("clf", clf),
    ])


def _ts_lr(profile: Profile, *, C: float, **p: Any) -> Pipeline:
    return _ts(profile, LogisticRegression(C=C, max_iter=1000), **p)


def _ts_svm(profile: Profile, *, C: float, **p: Any) -> Pipeline:
    return _ts(profile, _svm(C), **p)


def _mdm(profile: Profile, *, estimator: str, l_freq: Any, h_freq: Any, order: int) -> Pipeline:
    from pyriemann.classification import MDM

    return Pipeline([
        ("filter", CausalBandpass(profile.to_dict(), l_freq=l_freq, h_freq=h_freq, order=order)),
        ("cov", _covariances(estimator)),
        ("clf", MDM(metric="riemann")),
    ])


def _fbcsp(profile: Profile, *, n_components: int | None, select_k: int | str, clf: str, C: float,
           order: int, log: bool = True, reg: Any = None) -> Pipeline:
    if n_components is None:
        n_components = default_n_components(profile.n_channels, 4)
    bank = CausalFilterBank(profile.to_dict(), order=order).fit()
    final = _svm(C) if clf == "svm" else LinearDiscriminantAnalysis()
    return Pipeline([
        ("filter", CausalFilterBank(profile.to_dict(), order=order)),
        ("csp", BandCSP(n_bands=bank.n_bands, n_components=n_components, log=log, reg=reg)),
        ("select", MutualInfoSelect(k=select_k)),
        ("clf", final),
    ])


_COV = {"estimator": "oas", **_FILTER}
_BAND = {"l_freq": ("float", 4.0, 12.0, False), "h_freq": ("float", 24.0, 40.0, False)}

DECODERS: dict[str, DecoderSpec] = {
    spec.name: spec
    for spec in (
        DecoderSpec("csp-svm", "CSP log-power -> linear SVM (sigmoid-calibrated)",
                    {**_CSP, "C": 1.0, "kernel": "linear", "gamma": "scale", **_FILTER}, _csp_svm,
                    {"n_components": ("int", 2, 22), "C": ("float", 1e-2, 1e2, True), **_BAND}),
        DecoderSpec("csp-lda", "CSP log-power -> LDA", {**_CSP, **_FILTER}, _csp_lda,
                    {"n_components": ("int", 2, 22), **_BAND}),
        DecoderSpec("ts-lr", "shrunk covariance -> tangent space -> logistic regression",
                    {"C": 1.0, **_COV}, _ts_lr,
                    {"C": ("float", 1e-2, 1e2, True), "estimator": ("cat", ["oas", "lwf"]), **_BAND}),
        DecoderSpec("ts-svm", "shrunk covariance -> tangent space -> linear SVM (calibrated)",
                    {"C": 1.0, **_COV}, _ts_svm,
                    {"C": ("float", 1e-2, 1e2, True), "estimator": ("cat", ["oas", "lwf"]), **_BAND}),
        DecoderSpec("mdm", "shrunk covariance -> minimum distance to Riemannian class means",
                    dict(_COV), _mdm, {"estimator": ("cat", ["oas", "lwf"]), **_BAND}),
        DecoderSpec("fbcsp", "filter bank (4-Hz bands, 4-40 Hz) -> CSP per band -> MI selection -> SVM",
                    {"n_components": None, "select_k": "all", "clf": "svm", "C": 1.0, "order": 4},
                    _fbcsp, {"n_components": ("int", 2, 6), "select_k": ("cat", ["all", 8, 16]),
                             "C": ("float", 1e-2, 1e2, True), "clf": ("cat", ["svm", "lda"])},
                    max_components=4),  # 4 per band: the usual FBCSP choice (Ang et al. 2008)
    )
}

register_param(Param("decoder", DEFAULT_DECODER, f"the decoder: {', '.join(DECODERS)}", choice(*DECODERS)))


def decoder_spec(name: str) -> DecoderSpec:
    """The registered decoder ``name``.

    Raises
    ------
    ProfileError
        Unknown name (the message lists the known ones).
    """
    spec = DECODERS.get(str(name))
    if spec is None:
        raise ProfileError(f"unknown decoder '{name}' (known: {', '.join(DECODERS)})")
    return spec


def make_decoder(name: str = DEFAULT_DECODER, profile: Profile | str | None = None,
                 **params: Any) -> Pipeline:
    """Build the unfitted pipeline of decoder ``name``.

    Parameters
    ----------
    name : str
        A key of `DECODERS`.
    profile : Profile, str or None
        Dataset profile (default ``bci-iv-2a``).
    **params
        The decoder's parameters (`DecoderSpec.defaults` fill the rest).

    Raises
    ------
    ProfileError
        Unknown decoder.
    ParameterError
        A parameter the decoder does not take, or a value it does not allow (named with the value
        given and what is allowed; `bcistream.pipeline.params.PARAMS`), before scikit-learn sees it.
    """
    spec = decoder_spec(name)
    where = f"make_decoder({name!r})"
    unknown = set(params) - set(spec.defaults)
    if unknown:
        raise ParameterError(f"{where}: decoder '{name}' takes no parameter {', '.join(sorted(unknown))} "
                             f"(its parameters: {', '.join(spec.defaults)})")
    prof = load_profile(profile) if not isinstance(profile, Profile) else profile
    full = {**spec.defaults, **params}
    if full.get("n_components", 0) is None:  # the decoder's own default, to check it against the montage
        full["n_components"] = default_n_components(prof.n_channels, spec.max_components)
    check_params(full, prof, where)
    return spec.build(prof, **full)


def decoder_params(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a flat parameter set ``{"decoder": NAME, **its parameters}`` (name defaults to
    `DEFAULT_DECODER`) into the name and the decoder's keyword arguments."""
    rest = dict(params)
    name = str(rest.pop("decoder", None) or DEFAULT_DECODER)
    return name, rest


def build_pipeline(profile: Profile | str | None, params: dict[str, Any] | None = None) -> Pipeline:
    """`make_decoder` from a flat parameter set (``decoder`` key plus the decoder's parameters)."""
    name, rest = decoder_params(params or {})
    return make_decoder(name, profile, **rest)
