"""Pipeline parameters: one registry of what may be set, parsed from ``--set key=value`` and
validated — alone and in combination, against the profile — before any run, file or W&B run exists.

Each `Param` says its default, what values it accepts and a short help; `COMBINATION_CHECKS` hold
rules over several parameters. Decoders register their own parameters with `register_param` and
their own rules with `register_check`; `validate_params` applies them all and raises one line.

A parameter set is ``decoder`` (a name of `bcistream.decoders.DECODERS`, default ``csp-svm``) plus
that decoder's own parameters: a key another decoder takes but the chosen one does not is refused,
naming the decoder and its parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bcistream.data.profiles import Profile
from bcistream.decoders import DECODERS, DEFAULT_DECODER, decoder_spec
from bcistream.errors import BcistreamError, ProfileError
from bcistream.pipeline.factory import default_n_components

__all__ = ["COMBINATION_CHECKS", "PARAMS", "Param", "decoder_params_tag", "default_n_components",
           "parse_overrides", "pipeline_params", "register_check", "register_param", "resolve_params",
           "validate_params"]

#: A check returns ``None`` when the value is fine, else the reason (one short clause).
Check = Callable[[Any, Profile | None], str | None]


@dataclass(frozen=True)
class Param:
    """One settable pipeline parameter.

    Attributes
    ----------
    name : str
        Keyword of the pipeline factory.
    default : Any
        Default value (``None`` where the default depends on the profile, see `resolve_params`).
    help : str
        What it does and which values it takes (shown in errors and ``--help``).
    check : callable, optional
        ``check(value, profile) -> reason or None``; ``profile`` is ``None`` before it is known.
    """

    name: str
    default: Any
    help: str
    check: Check | None = None


def _number(low: float | None = None, high: float | None = None, *, integer: bool = False,
            allow_none: bool = False, low_open: bool = False) -> Check:
    def check(value: Any, _profile: Profile | None) -> str | None:
        if value is None:
            return None if allow_none else "needs a value"
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                integer and not float(value).is_integer()):
            return f"must be {'an integer' if integer else 'a number'}"
        if low is not None and (value <= low if low_open else value < low):
            return f"must be {'>' if low_open else '>='} {low:g}"
        if high is not None and value > high:
            return f"must be <= {high:g}"
        return None
    return check


def _choice(*options: Any) -> Check:
    def check(value: Any, _profile: Profile | None) -> str | None:
        return None if value in options else f"must be one of {', '.join(map(str, options))}"
    return check


def _n_components(value: Any, profile: Profile | None) -> str | None:
    reason = _number(1, None, integer=True, allow_none=True)(value, profile)
    if reason or value is None or profile is None:
        return reason
    if int(value) > profile.n_channels:
        return (f"must be <= the {profile.n_channels} channels of profile '{profile.name}' "
                f"(default min(6, channels), even)")
    return None


def _band_edge(value: Any, profile: Profile | None) -> str | None:
    reason = _number(0, None, allow_none=True, low_open=True)(value, profile)
    if reason or value is None or profile is None:
        return reason
    if value >= profile.sfreq / 2:
        return f"must be below half the rate of profile '{profile.name}' ({profile.sfreq / 2:g} Hz)"
    return None


def _gamma(value: Any, profile: Profile | None) -> str | None:
    if value in ("scale", "auto"):
        return None
    return _number(0, None, low_open=True)(value, profile)


def _reg(value: Any, profile: Profile | None) -> str | None:
    if value is None or value in ("ledoit_wolf", "oas", "empirical", "shrunk", "pca", "factor_analysis"):
        return None
    return _number(0, 1)(value, profile) and "must be none, ledoit_wolf, oas or a number in [0, 1]"


PARAMS: dict[str, Param] = {}


def register_param(param: Param) -> Param:
    """Add (or replace) a settable parameter."""
    PARAMS[param.name] = param
    return param


for _p in (
    Param("n_components", None, "CSP components, 1..channels (default min(6, channels), even)",
          _n_components),
    Param("log", True, "log-power CSP features (true) or standardised power (false)", _choice(True, False)),
    Param("reg", None, "CSP covariance regularisation: none, ledoit_wolf, oas or a number", _reg),
    Param("C", 1.0, "SVM regularisation, > 0", _number(0, None, low_open=True)),
    Param("kernel", "linear", "SVM kernel: linear or rbf", _choice("linear", "rbf")),
    Param("gamma", "scale", "RBF kernel width: scale, auto or a number > 0", _gamma),
    Param("l_freq", None, "low band edge in Hz (default: the profile's band)", _band_edge),
    Param("h_freq", None, "high band edge in Hz (default: the profile's band)", _band_edge),
    Param("order", 4, "Butterworth order, 1..10", _number(1, 10, integer=True)),
    # The decoder and the parameters only some decoders take (docs/decoders.md).
    Param("decoder", DEFAULT_DECODER, f"the decoder: {', '.join(DECODERS)}", _choice(*DECODERS)),
    Param("estimator", "oas", "covariance estimator of ts-lr, ts-svm, mdm: oas, lwf, scm or cov",
          _choice("oas", "lwf", "scm", "cov")),
    Param("select_k", "all", "fbcsp: features kept by mutual information, 'all' or a number >= 1",
          lambda v, p: None if v == "all" else _number(1, None, integer=True)(v, p)),
    Param("clf", "svm", "fbcsp's classifier: svm or lda", _choice("svm", "lda")),
):
    register_param(_p)

#: Rules over several parameters: ``check(params, profile) -> reason or None``.
COMBINATION_CHECKS: list[Callable[[dict[str, Any], Profile | None], str | None]] = []


def register_check(check: Callable[[dict[str, Any], Profile | None], str | None]) -> None:
    """Add a rule over several parameters (it sees the full parameter set and the profile)."""
    COMBINATION_CHECKS.append(check)


def _band_order(params: dict[str, Any], profile: Profile | None) -> str | None:
    low = params.get("l_freq")
    high = params.get("h_freq")
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


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["C=0.5", "kernel=rbf", "reg=none"]`` -> ``{"C": 0.5, "kernel": "rbf", "reg": None}``.

    Each value is checked on its own here (no profile yet); `validate_params` checks the rest.

    Raises
    ------
    BcistreamError
        An item without ``=``, a key that is not a registered parameter, or a bad value.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BcistreamError(f"--set expects key=value, got '{item}'")
        if key not in PARAMS:
            raise BcistreamError(f"--set: unknown parameter '{key}' (known: {', '.join(PARAMS)})")
        value = _value(text)
        check = PARAMS[key].check
        reason = check(value, None) if check else None
        if reason:
            raise BcistreamError(f"--set {key}={text.strip()}: {key} {reason}")
        out[key] = value
    return out


def pipeline_params(
    base: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full parameter set: ``decoder`` and its defaults, then ``base`` (e.g. a study's best
    trial), then ``overrides``.

    The decoder is the overrides', else the base's, else ``csp-svm``. Base values are kept only
    when the base is for the same decoder. Profile-dependent defaults stay ``None`` here;
    `resolve_params` fills them.

    Raises
    ------
    BcistreamError
        An unknown parameter, an unknown decoder, or a parameter the decoder does not take.
    """
    base, overrides = dict(base or {}), dict(overrides or {})
    for source in (base, overrides):
        unknown = set(source) - set(PARAMS)
        if unknown:
            raise BcistreamError(f"unknown pipeline parameters {sorted(unknown)}")
    name = str(overrides.get("decoder") or base.get("decoder") or DEFAULT_DECODER)
    try:
        spec = decoder_spec(name)
    except ProfileError as exc:
        raise BcistreamError(str(exc)) from None
    params: dict[str, Any] = {"decoder": name, **spec.defaults}
    if str(base.get("decoder") or DEFAULT_DECODER) == name:
        params.update({k: v for k, v in base.items() if k in params})
    foreign = set(overrides) - set(params)
    if foreign:
        raise BcistreamError(f"decoder '{name}' takes no parameter {', '.join(sorted(foreign))} "
                             f"(its parameters: {', '.join(spec.defaults)})")
    params.update(overrides)
    params["decoder"] = name
    return params


def decoder_params_tag(params: dict[str, Any]) -> str:
    """The decoder's parameters as one short ``key=value`` line (a registry tag, `models` shows it)."""
    return " ".join(f"{k}={v}" for k, v in params.items() if k != "decoder")


def validate_params(params: dict[str, Any], profile: Profile | None = None, where: str = "--set") -> None:
    """Check every value and every combination; raise `BcistreamError` with one line naming the
    first problem (call this before creating runs, files or W&B runs)."""
    for key, value in params.items():
        param = PARAMS.get(key)
        if param is None:
            raise BcistreamError(f"{where}: unknown parameter '{key}' (known: {', '.join(PARAMS)})")
        reason = param.check(value, profile) if param.check else None
        if reason:
            raise BcistreamError(f"{where}: {key}={value} — {key} {reason}")
    for check in COMBINATION_CHECKS:
        reason = check(params, profile)
        if reason:
            raise BcistreamError(f"{where}: {reason}")


def resolve_params(params: dict[str, Any], profile: Profile, where: str = "--set") -> dict[str, Any]:
    """Validate against ``profile`` and fill profile-dependent defaults (``n_components``)."""
    out = dict(params)
    if "n_components" in out and out["n_components"] is None:  # decoders without CSP have none
        out["n_components"] = default_n_components(profile.n_channels)
    validate_params(out, profile, where)
    return out
