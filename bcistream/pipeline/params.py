"""The decoders' parameters: what each accepts, checked where a pipeline is made.

One table (`PARAMS`) says, for every keyword a decoder factory takes, its default and which values
it accepts; `COMBINATION_CHECKS` hold rules over several parameters. `make_pipeline`,
`bcistream.decoders.make_decoder` and ``--set key=value`` (`bcistream.training.params`) all check
through `check_params`, so a bad ``C`` or ``kernel`` is refused with our parameter name before
scikit-learn sees it (its own errors name its internals: ``cross_val_predict``, ``cv``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bcistream.data.profiles import Profile
from bcistream.errors import ParameterError

__all__ = ["COMBINATION_CHECKS", "PARAMS", "Param", "check_params", "register_check", "register_param"]

#: A check returns ``None`` when the value is fine, else the reason (one short clause).
Check = Callable[[Any, Profile | None], str | None]


@dataclass(frozen=True)
class Param:
    """One decoder parameter.

    Attributes
    ----------
    name : str
        Keyword of the decoder factory.
    default : Any
        Default value (``None`` where the default depends on the profile).
    help : str
        What it does and which values it takes (shown in errors and ``--help``).
    check : callable, optional
        ``check(value, profile) -> reason or None``; ``profile`` is ``None`` before it is known.
    settable : bool
        Whether ``--set`` offers it (``False``: a Python-only keyword of `make_pipeline`).
    """

    name: str
    default: Any
    help: str
    check: Check | None = None
    settable: bool = True


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           allow_none: bool = False, low_open: bool = False) -> Check:
    """A check for a number in ``[low, high]`` (``(low, high]`` with ``low_open``); numpy scalars
    count, booleans do not."""
    what = "an integer" if integer else "a number"
    if low is not None and high is not None:
        what += f" in {'(' if low_open else '['}{low:g}, {high:g}]"
    elif low is not None:
        what += f" {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what += f" <= {high:g}"

    def check(value: Any, _profile: Profile | None) -> str | None:
        if value is None:
            return None if allow_none else f"must be {what}"
        kind = numbers.Integral if integer else numbers.Real
        if isinstance(value, bool) or not (isinstance(value, kind) or (
                integer and isinstance(value, numbers.Real) and float(value).is_integer())):
            return f"must be {what}"
        if low is not None and (value <= low if low_open else value < low):
            return f"must be {'>' if low_open else '>='} {low:g}"
        if high is not None and value > high:
            return f"must be <= {high:g}"
        return None
    return check


def choice(*options: Any) -> Check:
    """A check for one of ``options`` (``True`` is not ``1`` here)."""
    def check(value: Any, _profile: Profile | None) -> str | None:
        ok = any(value is o if isinstance(o, bool) or isinstance(value, bool) else value == o
                 for o in options)
        return None if ok else f"must be one of {', '.join(map(str, options))}"
    return check


def _n_components(value: Any, profile: Profile | None) -> str | None:
    reason = number(1, None, integer=True, allow_none=True)(value, profile)
    if reason or value is None or profile is None:
        return reason
    if int(value) > profile.n_channels:
        return (f"must be <= the {profile.n_channels} channels of profile '{profile.name}' "
                f"(default min(6, channels), even)")
    return None


def _band_edge(value: Any, profile: Profile | None) -> str | None:
    reason = number(0, None, allow_none=True, low_open=True)(value, profile)
    if reason or value is None or profile is None:
        return reason
    if value >= profile.sfreq / 2:
        return f"must be below half the rate of profile '{profile.name}' ({profile.sfreq / 2:g} Hz)"
    return None


def _gamma(value: Any, profile: Profile | None) -> str | None:
    if value in ("scale", "auto"):
        return None
    return number(0, None, low_open=True)(value, profile) and "must be scale, auto or a number > 0"


_REG_NAMES = ("ledoit_wolf", "oas", "empirical", "shrunk", "pca", "factor_analysis")


def _reg(value: Any, profile: Profile | None) -> str | None:
    if value is None or (isinstance(value, str) and value in _REG_NAMES):
        return None
    return number(0, 1)(value, profile) and f"must be none, {', '.join(_REG_NAMES)} or a number in [0, 1]"


def _select_k(value: Any, profile: Profile | None) -> str | None:
    if value == "all":
        return None
    return number(1, None, integer=True)(value, profile) and "must be 'all' or an integer >= 1"


PARAMS: dict[str, Param] = {}


def register_param(param: Param) -> Param:
    """Add (or replace) a decoder parameter."""
    PARAMS[param.name] = param
    return param


for _p in (
    Param("n_components", None, "CSP components, 1..channels (default min(6, channels), even)",
          _n_components),
    Param("log", True, "log-power CSP features (true) or standardised power (false)", choice(True, False)),
    Param("reg", None, "CSP covariance regularisation: none, ledoit_wolf, oas or a number", _reg),
    Param("C", 1.0, "SVM / logistic regression regularisation, > 0", number(0, None, low_open=True)),
    Param("kernel", "linear", "SVM kernel: linear or rbf", choice("linear", "rbf")),
    Param("gamma", "scale", "RBF kernel width: scale, auto or a number > 0", _gamma),
    Param("l_freq", None, "low band edge in Hz (default: the profile's band)", _band_edge),
    Param("h_freq", None, "high band edge in Hz (default: the profile's band)", _band_edge),
    Param("order", 4, "Butterworth order, 1..10", number(1, 10, integer=True)),
    Param("calibration_folds", 3, "folds of the SVM's probability calibration, 2..20",
          number(2, 20, integer=True), settable=False),
    # The parameters only some decoders take (docs/decoders.md); ``decoder`` itself is registered
    # by `bcistream.decoders.registry`, which knows the names.
    Param("estimator", "oas", "covariance estimator of ts-lr, ts-svm, mdm: oas, lwf, scm or cov",
          choice("oas", "lwf", "scm", "cov")),
    Param("select_k", "all", "fbcsp: features kept by mutual information, 'all' or a number >= 1", _select_k),
    Param("clf", "svm", "fbcsp's classifier: svm or lda", choice("svm", "lda")),
):
    register_param(_p)

#: Rules over several parameters: ``check(params, profile) -> reason or None``.
COMBINATION_CHECKS: list[Callable[[dict[str, Any], Profile | None], str | None]] = []


def register_check(check: Callable[[dict[str, Any], Profile | None], str | None]) -> None:
    """Add a rule over several parameters (it sees the full parameter set and the profile)."""
    COMBINATION_CHECKS.append(check)


def _band_order(params: dict[str, Any], profile: Profile | None) -> str | None:
    if "l_freq" not in params and "h_freq" not in params:
        return None  # a decoder without a band of its own (fbcsp's bank)
    low, high = params.get("l_freq"), params.get("h_freq")
    if profile is not None:
        low = profile.band[0] if low is None else low
        high = profile.band[1] if high is None else high
    if low is not None and high is not None and not low < high:
        return f"l_freq={low:g} must be below h_freq={high:g}"
    return None


def _gamma_needs_rbf(params: dict[str, Any], _profile: Profile | None) -> str | None:
    if params.get("kernel") == "linear" and params.get("gamma") not in ("scale", "auto", None):
        return f"gamma={params['gamma']} applies to kernel=rbf only (kernel is linear)"
    return None


register_check(_band_order)
register_check(_gamma_needs_rbf)


def check_params(params: dict[str, Any], profile: Profile | None = None,
                 where: str = "make_pipeline") -> None:
    """Check every value, then every combination; raise on the first problem.

    Parameters
    ----------
    params : dict
        Keyword -> value, as the decoder factory takes them.
    profile : Profile, optional
        Limits that depend on the montage and rate (``n_components``, band edges) are checked
        against it when given.
    where : str
        Who was called (``make_pipeline``, ``make_decoder('fbcsp')``, ``--set``): the message starts
        with it. Python callers see ``C=-1`` as given (repr), ``--set`` sees its own text.

    Raises
    ------
    ParameterError
        One line: ``WHERE: NAME=VALUE — NAME must be ...`` (also for an unknown keyword).
    """
    show = str if where.startswith("--") else repr
    for key, value in params.items():
        param = PARAMS.get(key)
        if param is None:
            raise ParameterError(f"{where}: unknown parameter '{key}' (known: {', '.join(PARAMS)})")
        reason = param.check(value, profile) if param.check else None
        if reason:
            raise ParameterError(f"{where}: {key}={show(value)} — {key} {reason}")
    for check in COMBINATION_CHECKS:
        reason = check(params, profile)
        if reason:
            raise ParameterError(f"{where}: {reason}")
