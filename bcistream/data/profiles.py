"""Dataset profiles: what a recording looks like and how it is decoded.

A profile names the EEG channels in decoding order, the sampling rate, the band, the window and its
offset from the cue, the map from annotation description to class name and the rejection marker.
Profiles are plain data: the fitted pipeline stores one (as a dict) so every consumer decodes with
the same channels, rate, window and class names.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bcistream.data.contract import MarkerMap, UnitError, volts_per_unit
from bcistream.errors import ProfileError

__all__ = ["BUILTIN_PROFILES", "Profile", "load_profile"]


class Profile(BaseModel):
    """A dataset profile.

    Parameters
    ----------
    name : str
        Profile name (``bci-iv-2a`` for the built-in one).
    channels : tuple of str
        EEG channel names in decoding order (after ``rename``).
    sfreq : float
        Sampling rate in Hz.
    band : tuple of float
        Pass band of the causal filter, in Hz.
    window_s : float
        Decoding window length in seconds.
    offset_s : float
        Window start relative to the cue, in seconds.
    classes : dict
        Annotation description -> class name. Its order is the class order.
    rename : dict
        Channel name in the file -> name in ``channels``.
    reject_marker : str or None
        Annotation description that marks a rejected trial; it rejects the first cue at or after
        its onset within ``reject_lookahead_s``.
    unknown_cue : str or None
        Annotation description of a cue whose class is unknown (evaluation sessions).
    missing_value : float or None
        Value (in volts) that marks missing samples when every channel holds it.
    units : str or None
        Unit of samples from sources that declare none (files, LSL outlets without channel
        units, Kafka messages without a ``units`` header), e.g. ``"microvolts"``; ``None``: such
        samples must be plausible as volts (`bcistream.data.contract`).
    markers : dict
        More marker values -> class name for live marker streams and files (e.g. ``T1 = "left"``);
        codes and class names in ``classes`` always work.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    channels: tuple[str, ...] = Field(min_length=1)
    sfreq: float = Field(gt=0)
    band: tuple[float, float] = (8.0, 30.0)
    window_s: float = Field(default=3.0, gt=0)
    offset_s: float = 0.5
    classes: dict[str, str] = Field(min_length=2)
    rename: dict[str, str] = Field(default_factory=dict)
    reject_marker: str | None = None
    reject_lookahead_s: float = Field(default=6.0, ge=0)
    unknown_cue: str | None = None
    missing_value: float | None = None
    units: str | None = None
    markers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must be unique")
        low, high = self.band
        if not 0 < low < high < self.sfreq / 2:
            raise ValueError(
                f"band must satisfy 0 < low < high < sfreq/2 = {self.sfreq / 2:g} Hz, got {self.band}"
            )
        if len(set(self.classes.values())) != len(self.classes):
            raise ValueError("class names must be unique")
        if self.window_samples < 2:
            raise ValueError("window_s is shorter than two samples")
        if self.units is not None:
            try:
                volts_per_unit(self.units)
            except UnitError as exc:  # pydantic reports ValueErrors only
                raise ValueError(str(exc)) from None
        MarkerMap.from_profile(self)  # ValueError: an alias names no class, a code means two things
        return self

    @property
    def volts_per_unit(self) -> float | None:
        """Scale of undeclared samples to volts (``None``: undeclared, check plausibility)."""
        return None if self.units is None else volts_per_unit(self.units)

    @property
    def marker_map(self) -> MarkerMap:
        """Marker value -> class name (`bcistream.data.contract.MarkerMap`)."""
        return MarkerMap.from_profile(self)

    @property
    def n_channels(self) -> int:
        """Number of EEG channels decoded."""
        return len(self.channels)

    @property
    def window_samples(self) -> int:
        """Window length in samples."""
        return int(round(self.window_s * self.sfreq))

    @property
    def offset_samples(self) -> int:
        """Window start relative to the cue, in samples."""
        return int(round(self.offset_s * self.sfreq))

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names in profile order."""
        return tuple(self.classes.values())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (lists, not tuples)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "profile") -> Profile:
        """Validate ``data`` into a profile; raise `ProfileError` with a one-line reason."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "profile"
            msg = first["msg"].removeprefix("Value error, ")
            raise ProfileError(f"{source}: invalid profile field '{where}': {msg}") from None

    def check_compatible(self, other: Profile) -> None:
        """Raise `ProfileError` unless ``other`` decodes the same streams (channels, rate, window)."""
        problems = []
        if self.channels != other.channels:
            problems.append(f"channels {list(other.channels)} != {list(self.channels)}")
        if self.sfreq != other.sfreq:
            problems.append(f"sfreq {other.sfreq:g} Hz != {self.sfreq:g} Hz")
        if self.window_samples != other.window_samples:
            problems.append(f"window {other.window_samples} != {self.window_samples} samples")
        if problems:
            raise ProfileError(
                f"profile '{other.name}' is incompatible with '{self.name}': " + "; ".join(problems)
            )


def _builtin(name: str) -> Profile:
    text = resources.files("bcistream.data").joinpath("profiles", f"{name}.toml").read_text()
    return Profile.from_dict(tomllib.loads(text), source=f"built-in profile {name}")


BUILTIN_PROFILES: tuple[str, ...] = ("bci-iv-2a",)


def load_profile(spec: str | Path | Profile | None = None) -> Profile:
    """Return a profile from a built-in name, a TOML file path, or a `Profile`.

    Parameters
    ----------
    spec : str, Path, Profile or None
        ``None`` gives the default ``bci-iv-2a``.

    Raises
    ------
    ProfileError
        Unknown name, unreadable file or invalid content.
    """
    if isinstance(spec, Profile):
        return spec
    if spec is None or str(spec) in BUILTIN_PROFILES:
        return _builtin(str(spec or "bci-iv-2a"))
    path = Path(spec)
    if not path.is_file():
        raise ProfileError(
            f"profile '{spec}' is neither a built-in profile {list(BUILTIN_PROFILES)} nor a file"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read profile TOML: {exc}") from None
    return Profile.from_dict(data, source=str(path))
