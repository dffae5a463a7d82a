"""Pipeline parameters from the command line (``--set key=value``) and their validation."""

from __future__ import annotations

from typing import Any

from bcistream.errors import BcistreamError
from bcistream.pipeline import DEFAULT_PARAMS

__all__ = ["parse_overrides", "pipeline_params"]


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
        An item without ``=`` or a key that is not a parameter of `make_pipeline`.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BcistreamError(f"--set expects key=value, got '{item}'")
        if key not in DEFAULT_PARAMS:
            raise BcistreamError(f"--set: unknown parameter '{key}' (known: {', '.join(DEFAULT_PARAMS)})")
        out[key] = _value(text)
    return out


def pipeline_params(
    base: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then ``base`` (e.g. a study's best trial), then ``overrides``: the full parameter set."""
    params = dict(DEFAULT_PARAMS)
    for source in (base or {}, overrides or {}):
        unknown = set(source) - set(DEFAULT_PARAMS)
        if unknown:
            raise BcistreamError(f"unknown pipeline parameters {sorted(unknown)}")
        params.update(source)
    return params
