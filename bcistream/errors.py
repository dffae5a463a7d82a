"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from __future__ import annotations


class BcistreamError(Exception):
    """A user-facing error: its message names the file or parameter and what was expected."""


class ProfileError(BcistreamError):
    """A dataset profile is invalid, or data does not match it."""


class DataError(BcistreamError):
    """A recording cannot be read or does not fit the profile."""
