"""What a registry failure means: the model errors and the tests that classify MLflow's answers.

Kept apart from the code that talks to MLflow so every registry module (client, look-ups, loading)
can raise and classify the same errors without importing one another.
"""

from __future__ import annotations

from bcistream.errors import BcistreamError

__all__ = ["ModelError", "RegistryBusyError", "is_busy_error", "is_not_found", "read_failure"]


class ModelError(BcistreamError):
    """A model cannot be found, loaded or registered."""


class RegistryBusyError(ModelError):
    """The registry's database stayed locked (sqlite ``database is locked``) or unreachable."""


def is_busy_error(exc: BaseException) -> bool:
    """A locked sqlite file or a database that refused the connection (worth a retry)."""
    text = str(exc).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    return type(exc).__name__ == "OperationalError" and any(
        key in text for key in ("locked", "busy", "could not connect", "connection refused", "timeout",
                                "timed out"))


def is_not_found(exc: BaseException) -> bool:
    """An MLflow answer meaning "no such model, alias or version" (not an unreadable registry)."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND",
                                                "INVALID_PARAMETER_VALUE")


def read_failure(exc: BaseException) -> str:
    """Why the registry could not be read, short: an HTTP server that is down is "connection
    refused" / "timed out" (MLflow's message is urllib3's ~400-character retry report)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    low = text.lower()
    for needle, short in (("connection refused", "connection refused (is the MLflow server up?)"),
                          ("timed out", "timed out"), ("name or service not known", "unknown host")):
        if needle in low:
            return short
    return (text.splitlines() or [type(exc).__name__])[0][:200]
