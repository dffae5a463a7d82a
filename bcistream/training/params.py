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

from typing import Any

from bcistream.data.profiles import Profile
from bcistream.decoders import DEFAULT_DECODER, decoder_spec
from bcistream.errors import BcistreamError, ProfileError
from bcistream.pipeline.factory import default_n_components
from bcistream.pipeline.params import (
    COMBINATION_CHECKS,
    PARAMS,
    Param,
    check_params,
    register_check,
    register_param,
)

__all__ = ["COMBINATION_CHECKS", "PARAMS", "Param", "decoder_params_tag", "default_n_components",
           "parse_overrides", "pipeline_params", "register_check", "register_param", "resolve_params",
           "settable", "validate_params"]


def settable() -> list[str]:
    """The parameter names ``--set`` accepts (every decoder's; Python-only keywords left out)."""
    return [name for name, p in PARAMS.items() if p.settable]


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
        if key not in PARAMS or not PARAMS[key].settable:
            raise BcistreamError(f"--set: unknown parameter '{key}' (known: {', '.join(settable())})")
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
        unknown = set(source) - set(settable())
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
    unknown = [k for k in params if k not in PARAMS or not PARAMS[k].settable]
    if unknown:
        raise BcistreamError(f"{where}: unknown parameter '{unknown[0]}' (known: {', '.join(settable())})")
    check_params(params, profile, where)


def resolve_params(params: dict[str, Any], profile: Profile, where: str = "--set") -> dict[str, Any]:
    """Validate against ``profile`` and fill profile-dependent defaults (``n_components``)."""
    out = dict(params)
    if "n_components" in out and out["n_components"] is None:  # decoders without CSP have none
        most = decoder_spec(out["decoder"]).max_components if "decoder" in out else 6
        out["n_components"] = default_n_components(profile.n_channels, most)
    validate_params(out, profile, where)
    return out
