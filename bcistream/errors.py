"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class BcistreamError(Exception):
    """A user-facing error: its message names the file or parameter and what was expected."""


class ProfileError(BcistreamError):
    """A dataset profile is invalid, or data does not match it."""


class DataError(BcistreamError):
    """A recording cannot be read or does not fit the profile."""


class ParameterError(BcistreamError, ValueError):
    """A parameter or option value is not allowed: the message names it, the value given and what
    is allowed (one line per problem). A ``ValueError`` too, as scikit-learn and pydantic use."""


class ConfigError(ParameterError):
    """A typed configuration (`bcistream.live.LiveConfig`, ...) refused its fields.

    Attributes
    ----------
    owner : str
        The class refusing them (``"LiveConfig"``).
    problems : list of (str, str)
        ``(field, what is wrong)``, e.g. ``("workers", "must be >= 1, got 0")``; the message has one
        line per problem (``LiveConfig: workers must be >= 1, got 0``).
    """

    def __init__(self, owner: str, problems: list[tuple[str, str]]) -> None:
        self.owner = owner
        self.problems = list(problems)
        super().__init__("\n".join(f"{owner}: {field} {text}" if field else f"{owner}: {text}"
                                   for field, text in self.problems))

    @classmethod
    def from_validation(cls, owner: str, exc: Exception) -> ConfigError:
        """From a pydantic ``ValidationError`` (anything with ``errors()``)."""
        return cls(owner, validation_problems(exc.errors()))  # type: ignore[attr-defined]


#: pydantic error type -> our phrase (``{ge}`` etc. come from the error's context).
_PHRASES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "too_short": "must have at least {min_length} item(s)",
}


def validation_problems(errors: list[dict], show: Callable[[Any], str] = repr) -> list[tuple[str, str]]:
    """pydantic's ``ValidationError.errors()`` as ``(field, "must be >= 1, got 0")`` pairs.

    ``field`` is the dotted location (``""`` for a whole-model rule). A validator's own
    ``ValueError`` text is kept, minus pydantic's ``"Value error, "`` prefix and a leading field
    name (so the caller can name the field in its own words: ``workers`` or ``--workers``).
    ``show`` formats the value given (``repr`` for Python values, ``str`` for command-line text).
    """
    out = []
    for err in errors:
        field = ".".join(str(p) for p in err.get("loc", ()))
        kind = str(err.get("type", ""))
        template = _PHRASES.get(kind)
        if template is not None:
            try:
                ctx = {k: f"{v:g}" if isinstance(v, float) else v for k, v in (err.get("ctx") or {}).items()}
                text = template.format(**ctx)
            except (KeyError, IndexError):
                text = str(err.get("msg", kind))
        else:
            text = str(err.get("msg", kind)).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if field and text.startswith(field + " "):
                text = text[len(field) + 1:]
        value = err.get("input")
        if kind not in ("missing", "extra_forbidden") and not isinstance(value, dict) and "got " not in text:
            text += f", got {show(value)}"
        out.append((field, text))
    return out
