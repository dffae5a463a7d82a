"""Usage errors (bad option values, unknown or missing options) as one ``error: …`` line.

click/typer print a usage block, a hint and ``Error: Invalid value for '--workers': Input should
be greater than or equal to 1``; the CLI's rule is one line naming the option, the value and what
is allowed: ``error: --workers: must be >= 1, got 0``. Every command goes through `usage_line`, so
a new option's range or type check needs nothing of its own.
"""

from __future__ import annotations

from bcistream.errors import validation_problems

__all__ = ["usage_line"]


def _hint(exc: BaseException) -> str:
    """The option as typed on the command line (``--workers``, or ``FILE`` for an argument)."""
    hint = getattr(exc, "param_hint", None)
    if hint is None and getattr(exc, "param", None) is not None:
        param = exc.param  # type: ignore[attr-defined]
        opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("--")]
        hint = opts[0] if opts else (getattr(param, "opts", None) or [param.name or ""])[0]
        if getattr(param, "param_type_name", "") == "argument":
            hint = (param.name or hint).upper()
    if isinstance(hint, list | tuple):
        hint = " / ".join(hint)
    return str(hint or "").strip("'")


def usage_line(exc: BaseException) -> str:
    """One line (no ``error:`` prefix) for a click/typer ``UsageError``.

    Parameters
    ----------
    exc : click.UsageError or typer's own UsageError
        A `BadParameter` (typer's pydantic coercion or a range check), a missing parameter, an
        unknown option, an extra argument.
    """
    name = type(exc).__name__
    message = str(getattr(exc, "message", "") or exc).strip()
    command = getattr(getattr(exc, "ctx", None), "command_path", "") or "bcistream"
    if name == "MissingParameter":
        param = getattr(exc, "param", None)
        kind = "argument" if getattr(param, "param_type_name", "") == "argument" else "option"
        return f"missing {kind} {_hint(exc)} (see '{command} --help')"
    if name == "BadParameter" or (hasattr(exc, "param") and hasattr(exc, "param_hint")):
        cause = exc.__cause__
        if cause is not None and hasattr(cause, "errors"):  # typer coerces values with pydantic
            reasons = [text for _, text in validation_problems(cause.errors(), show=str)]
            message = "; ".join(reasons) or message
        return f"{_hint(exc)}: {message}"
    if name == "NoSuchOption":
        found = sorted(getattr(exc, "possibilities", None) or [])
        extra = f" (did you mean {', '.join(found)}?)" if found else ""
        return f"{message[:1].lower()}{message[1:]}{extra} (see '{command} --help')"
    text = " ".join(message.split()).rstrip(".")  # one line whatever click wrote
    return f"{text[:1].lower()}{text[1:]} (see '{command} --help')"
