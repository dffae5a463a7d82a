"""The input contract: what every edge (LSL, Kafka, HTTP, Python, files) guarantees downstream.

Everything below the edges works in **volts** and with **class names**. This module states the
rules once; adapters call it where data enters, nothing downstream re-checks.

Units
    A declared unit (LSL ``desc/channels/channel/unit``, a Kafka header, an HTTP ``units`` field,
    a profile's ``units`` key, a file's own metadata) is parsed with `volts_per_unit` and the
    samples are scaled to volts. Where nothing is declared, `check_plausible_volts` looks at the
    amplitudes: EEG in volts has a channel RMS between ~10 nV and ~10 mV (scalp EEG is ~1–100 µV,
    DC offsets of referenced amplifiers stay well below 10 mV). Outside that range the data are
    refused with one line naming the likely unit and how to declare it — never decoded silently.

Markers
    `normalize_marker` turns any marker value (str, bytes, int, float, numpy scalar) into text:
    integral numbers become their decimal form (``770``, ``770.0`` → ``"770"``), surrounding
    whitespace is stripped, matching is case-insensitive (``"LEFT"`` → ``left``), at most
    `MAX_MARKER_CHARS` characters, no control characters (NUL, newline, …). `MarkerMap` maps the
    text through a profile's class map: annotation codes (``"769"``), class names (``"left"``) and
    the profile's extra ``markers`` aliases (``"T1"``) all give the class name; the profile's
    unknown-cue code (and ``"unknown"``, what replays send) is a cue to decide, never scored.
    Values that map to no class are counted per value by the caller and never become a cue label.
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bcistream.errors import DataError

__all__ = [
    "EEG_RMS_RANGE_V",
    "MAX_MARKER_CHARS",
    "MarkerMap",
    "MarkerResult",
    "UNKNOWN_CUE_TEXT",
    "UnitError",
    "check_plausible_volts",
    "declared_volts_per_unit",
    "guess_unit",
    "normalize_marker",
    "to_volts",
    "volts_per_unit",
]

#: Channel RMS (volts) that EEG in volts can have: below is nanovolt-scaled or dead, above is
#: (most likely) microvolts or millivolts sent as if they were volts.
EEG_RMS_RANGE_V: tuple[float, float] = (1e-8, 1e-2)

#: Marker text of a cue of unknown class in bcistream's own replays (unless a profile maps it).
UNKNOWN_CUE_TEXT = "unknown"

#: Longest marker text accepted; longer values are malformed (a sane marker is a code or a name).
MAX_MARKER_CHARS = 64

_UNIT_ALIASES: dict[str, float] = {
    "v": 1.0, "volt": 1.0, "volts": 1.0,
    "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
    "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
    "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9,
}

#: Canonical names of the scales, for messages (the likely unit of implausible data).
_UNIT_NAMES: dict[float, str] = {1.0: "volts", 1e-3: "millivolts", 1e-6: "microvolts", 1e-9: "nanovolts"}


class UnitError(DataError):
    """Samples whose unit is unknown, undeclared and implausible as volts, or declared wrongly."""


def volts_per_unit(unit: str) -> float:
    """Scale factor from a declared unit to volts.

    Parameters
    ----------
    unit : str
        ``"V"``, ``"mV"``, ``"uV"``/``"µV"``/``"microvolts"``, ``"nV"`` … (case and surrounding
        whitespace ignored).

    Returns
    -------
    float
        Multiply samples by this to get volts.

    Raises
    ------
    UnitError
        The unit is not a voltage unit this module knows.
    """
    key = str(unit).strip().lower()
    try:
        return _UNIT_ALIASES[key]
    except KeyError:
        known = ", ".join(sorted({"V", "mV", "uV", "µV", "nV", "volts", "microvolts"}))
        raise UnitError(f"unknown unit {unit!r}: use one of {known}") from None


def declared_volts_per_unit(units: Sequence[object] | None) -> float | None:
    """Scale to volts from the units a source declares per channel (e.g. LSL channel metadata).

    Parameters
    ----------
    units : sequence of str or None
        One declared unit per channel (``None`` or ``""`` where a channel declares none).

    Returns
    -------
    float or None
        The scale (`volts_per_unit`) when the channels declare one voltage unit; ``None`` when
        no channel declares any (the caller falls back to the profile's ``units`` or the
        plausibility check).

    Raises
    ------
    UnitError
        Channels declare different units, or a unit that is not a voltage unit.
    """
    named = [str(u).strip() for u in (units or ()) if u is not None and str(u).strip()]
    if not named:
        return None
    scales = {volts_per_unit(u) for u in named}
    if len(scales) != 1:
        raise UnitError(f"channels declare different units {sorted(set(named))}: send one unit for "
                        f"all EEG channels")
    return scales.pop()


def to_volts(data: np.ndarray, unit: str | float | None) -> np.ndarray:
    """Samples in volts.

    Parameters
    ----------
    data : ndarray, shape (..., n_samples)
        Samples in ``unit``.
    unit : str, float or None
        A declared unit (`volts_per_unit`), a scale factor to volts, or ``None`` (already volts).

    Returns
    -------
    ndarray
        ``data`` itself when the scale is 1, else a scaled copy of the same float dtype.
    """
    scale = 1.0 if unit is None else (float(unit) if isinstance(unit, numbers.Real) else volts_per_unit(unit))
    if scale == 1.0:
        return data
    out = np.asarray(data)
    dtype = out.dtype if out.dtype.kind == "f" else np.float64
    return np.multiply(out, scale, dtype=dtype)


def channel_rms(data: np.ndarray) -> np.ndarray:
    """RMS of each channel over the finite samples (DC included), shape (n_channels,)."""
    x = np.asarray(data, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
    finite = np.isfinite(x)
    n = finite.sum(axis=-1)
    sq = np.where(finite, x, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(sq.sum(axis=-1) / np.maximum(n, 1))


def guess_unit(rms_v: float) -> str | None:
    """The unit data of this RMS (read as volts) was most likely sent in; ``None`` if volts fit."""
    low, high = EEG_RMS_RANGE_V
    if low <= rms_v <= high:
        return None
    for scale in (1e-3, 1e-6, 1e-9):  # sent in this unit, read as volts: true RMS = rms * scale
        if low <= rms_v * scale <= high and 1e-7 <= rms_v * scale <= 1e-3:
            return _UNIT_NAMES[scale]
    if rms_v < low:
        return "nanovolt-scaled volts (signal 1e6 times too small)" if rms_v > 0 else None
    return None


@dataclass(frozen=True)
class UnitVerdict:
    """Outcome of a plausibility check (``ok`` False: refuse, with ``message`` as the one line)."""

    ok: bool
    median_rms_v: float
    likely_unit: str | None
    message: str


def check_plausible_volts(data: np.ndarray, where: str, fix: str) -> UnitVerdict:
    """Check that undeclared samples can be EEG in volts.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples) or (n_trials, n_channels, n_samples)
        Samples as received, read as volts.
    where : str
        What the data are, for the message (``"LSL stream 'amp'"``, ``"trial 3"``, a file name).
    fix : str
        How the user declares the unit at this edge (named in the message).

    Returns
    -------
    UnitVerdict
        ``ok`` is False when the median channel RMS lies outside `EEG_RMS_RANGE_V`; the message
        names the likely unit and ``fix``. All-zero (flat) data are not a unit problem and pass
        here: flat signals are refused elsewhere with their own message.
    """
    rms = channel_rms(data)
    rms = rms[np.isfinite(rms)]
    live = rms[rms > 0]
    if live.size == 0:
        return UnitVerdict(True, 0.0, None, "")
    med = float(np.median(live))
    low, high = EEG_RMS_RANGE_V
    if low <= med <= high:
        return UnitVerdict(True, med, None, "")
    likely = guess_unit(med)
    side = "above" if med > high else "below"
    guess = f"; the samples look like {likely}" if likely else ""
    msg = (f"{where}: median channel RMS {med:.3g} is {side} what EEG in volts can be "
           f"({low:g}–{high:g} V){guess}: declare the unit ({fix})")
    return UnitVerdict(False, med, likely, msg)


def require_plausible_volts(data: np.ndarray, where: str, fix: str) -> None:
    """`check_plausible_volts`, raising `UnitError` with its one-line message when it fails."""
    verdict = check_plausible_volts(data, where, fix)
    if not verdict.ok:
        raise UnitError(verdict.message)


# ---------------------------------------------------------------------------------------- markers
def normalize_marker(value: object) -> str | None:
    """The text of a marker value, or ``None`` when it is malformed.

    Rules: bytes are UTF-8; integral numbers (int, numpy integer, ``770.0``) become their decimal
    form; other finite floats keep ``repr``; surrounding whitespace is stripped; empty text, text
    longer than `MAX_MARKER_CHARS` and text with control characters (NUL, newline, tab, …) are
    malformed. Case is kept here; `MarkerMap` matches case-insensitively.
    """
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return None
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            return None
        text = str(int(f)) if f.is_integer() else repr(f)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if not text or len(text) > MAX_MARKER_CHARS:
        return None
    if any(unicodedata.category(c).startswith("C") for c in text):
        return None
    return text


@dataclass(frozen=True)
class MarkerResult:
    """What a marker value means.

    ``kind``: ``"class"`` (``label`` is the class name), ``"unknown-cue"`` (the profile's cue of
    unknown class: a cue to decide, never scored), ``"reject"`` (the profile's rejection marker),
    ``"unmapped"`` (valid text, no class) or ``"malformed"`` (see `normalize_marker`). ``text`` is
    the normalised text (a bounded ``repr`` for malformed values), for counters and messages.
    """

    kind: Literal["class", "unknown-cue", "reject", "unmapped", "malformed"]
    label: str | None
    text: str

    @property
    def is_cue(self) -> bool:
        """Whether the marker starts a cue-locked decision."""
        return self.kind in ("class", "unknown-cue")


class MarkerMap:
    """Marker value -> class name, from a profile's class map.

    Parameters
    ----------
    classes : mapping
        Annotation description (code) -> class name, in class order (``Profile.classes``).
    aliases : mapping, optional
        More marker values -> class name (``Profile.markers``, e.g. ``{"T1": "left"}``).
    unknown_cue : str, optional
        The code of a cue of unknown class (``Profile.unknown_cue``).
    reject_marker : str, optional
        The code that rejects a trial (``Profile.reject_marker``).

    Raises
    ------
    ValueError
        An alias names no class, or two keys collide after case folding with different meanings.
    """

    def __init__(self, classes: Mapping[str, str], aliases: Mapping[str, str] | None = None,
                 unknown_cue: str | None = None, reject_marker: str | None = None) -> None:
        names = list(classes.values())
        table: dict[str, MarkerResult] = {}

        def add(key: str, result: MarkerResult) -> None:
            text = normalize_marker(key)
            if text is None:
                raise ValueError(f"marker {key!r} is not a valid marker text")
            folded = text.casefold()
            old = table.get(folded)
            if old is not None and (old.kind, old.label) != (result.kind, result.label):
                raise ValueError(f"marker {key!r} means both {old.label or old.kind} and "
                                 f"{result.label or result.kind}")
            table[folded] = result

        for code, name in classes.items():
            add(code, MarkerResult("class", name, str(code)))
            add(name, MarkerResult("class", name, str(name)))
        for key, name in (aliases or {}).items():
            if name not in names:
                raise ValueError(f"marker alias {key!r} names {name!r}, which is not a class "
                                 f"({', '.join(names)})")
            add(key, MarkerResult("class", name, str(key)))
        if unknown_cue is not None:
            add(unknown_cue, MarkerResult("unknown-cue", None, str(unknown_cue)))
        if reject_marker is not None:
            add(reject_marker, MarkerResult("reject", None, str(reject_marker)))
        if UNKNOWN_CUE_TEXT not in table:  # bcistream's replays send it for cues of unknown class
            table[UNKNOWN_CUE_TEXT] = MarkerResult("unknown-cue", None, UNKNOWN_CUE_TEXT)
        self.class_names: tuple[str, ...] = tuple(names)
        self._table = table

    @classmethod
    def from_profile(cls, profile: object) -> MarkerMap:
        """The map of a `bcistream.data.profiles.Profile` (``classes``, ``markers``, cue codes)."""
        return cls(getattr(profile, "classes"), getattr(profile, "markers", None),  # noqa: B009
                   getattr(profile, "unknown_cue", None), getattr(profile, "reject_marker", None))

    def map(self, value: object) -> MarkerResult:
        """Meaning of one marker value (never raises)."""
        text = normalize_marker(value)
        if text is None:
            shown = repr(value)
            return MarkerResult("malformed", None, shown if len(shown) <= 40 else shown[:37] + "...")
        hit = self._table.get(text.casefold())
        return hit if hit is not None else MarkerResult("unmapped", None, text)

    def map_many(self, values: Sequence[object]) -> list[MarkerResult]:
        """`map` applied to each value."""
        return [self.map(v) for v in values]
