"""Pipeline parameters from the command line (``--set key=value``) and their validation.

A parameter set is flat: ``decoder`` (a name of `bcistream.decoders.DECODERS`, default
``csp-svm``) plus that decoder's own parameters. ``--set`` keys are checked against the chosen
decoder: a key another decoder takes but this one does not is refused, naming the decoder.
"""

from __future__ import annotations

from typing import Any

from bcistream.decoders import DECODERS, DEFAULT_DECODER, decoder_spec
from bcistream.errors import BcistreamError, ProfileError

__all__ = ["decoder_params_tag", "known_keys", "parse_overrides", "pipeline_params"]


def known_keys() -> list[str]:
    """Every key ``--set`` may name: ``decoder`` and the parameters of all decoders."""
    keys = ["decoder"]
    for spec in DECODERS.values():
        keys += [k for k in spec.defaults if k not in keys]
    return keys


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

    Raises
    ------
    BcistreamError
        An item without ``=``, a key no decoder takes, or an unknown decoder name.
    """
    out: dict[str, Any] = {}
    keys = known_keys()
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BcistreamError(f"--set expects key=value, got '{item}'")
        if key not in keys:
            raise BcistreamError(f"--set: unknown parameter '{key}' (known: {', '.join(keys)})")
        out[key] = text.strip() if key == "decoder" else _value(text)
    if "decoder" in out:
        try:
            decoder_spec(out["decoder"])
        except ProfileError as exc:
            raise BcistreamError(f"--set decoder: {exc}") from None
    return out


def pipeline_params(
    base: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full parameter set: ``decoder`` and its defaults, then ``base`` (e.g. a study's best
    trial), then ``overrides``.

    The decoder is the overrides', else the base's, else ``csp-svm``. Base values are kept only
    when the base is for the same decoder; overrides must all be parameters of the decoder.

    Raises
    ------
    BcistreamError
        Unknown decoder, or a parameter the decoder does not take.
    """
    base, overrides = dict(base or {}), dict(overrides or {})
    name = str(overrides.get("decoder") or base.get("decoder") or DEFAULT_DECODER)
    try:
        spec = decoder_spec(name)
    except ProfileError as exc:
        raise BcistreamError(str(exc)) from None
    params: dict[str, Any] = {"decoder": name, **spec.defaults}
    if str(base.get("decoder") or DEFAULT_DECODER) == name:
        unknown = set(base) - set(params)
        if unknown:
            raise BcistreamError(f"unknown pipeline parameters {sorted(unknown)} for decoder '{name}'")
        params.update(base)
    unknown = set(overrides) - set(params)
    if unknown:
        raise BcistreamError(f"decoder '{name}' takes no parameter {', '.join(sorted(unknown))} "
                             f"(its parameters: {', '.join(spec.defaults)})")
    params.update(overrides)
    params["decoder"] = name
    return params


def decoder_params_tag(params: dict[str, Any]) -> str:
    """The decoder's parameters as one short ``key=value`` line (a registry tag, `models` column)."""
    return " ".join(f"{k}={v}" for k, v in params.items() if k != "decoder")
