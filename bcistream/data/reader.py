"""The file reader: one recording file through MNE into a preloaded ``mne.io.BaseRaw``.

Kept apart from `bcistream.data.loader` (which lays a raw out in a dataset profile's channels,
units and cues) so reading a file lives in one place: a missing, unreadable, empty or truncated
file becomes a `DataError` with a one-line reason, the reader's warnings are refused unless the
user allows them (`check_warnings`, shared with the XDF and BIDS readers), only the wanted
channels are read where the format allows it (so auxiliary channels at other rates do not
resample the EEG), and the units the file declares are reported (`file_units`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from bcistream.errors import DataError

__all__ = ["BENIGN_WARNINGS", "check_warnings", "file_units", "read_raw", "read_raw_notes"]


#: Reader warnings that say nothing about the data being wrong (MNE numbers duplicate labels).
BENIGN_WARNINGS = (re.compile(r"Channel names are not unique"),
                   re.compile(r"does not conform to MNE naming conventions"))


#: What a refused file's message suggests instead.
_FORMATS = "recordings are .gdf, .edf, .bdf, .fif, .fif.gz, .xdf or another EEG format MNE reads"


def _reader_name(path: Path) -> str:
    return "pyxdf" if path.suffix.lower() == ".xdf" else "MNE"


def check_warnings(path: Path, messages: list[str], allow_warnings: bool) -> tuple[str, ...]:
    """Refuse a file its reader warned about (e.g. a record count that does not match the size).

    Returns the warnings kept as notes (benign ones, or all when ``allow_warnings``); raises
    `DataError` naming the file and the first warning otherwise.
    """
    serious = [m for m in messages if not any(p.search(m) for p in BENIGN_WARNINGS)]
    if serious and not allow_warnings:
        more = f" (+{len(serious) - 1} more)" if len(serious) > 1 else ""
        raise DataError(f"{path}: {_reader_name(path)} warns: {serious[0]}{more}; the file may be "
                        "truncated or damaged (pass --allow-warnings to read it anyway)")
    return tuple(dict.fromkeys(serious))


def _mne_read(path: Path, include: list[str] | None, preload: bool):
    import mne

    kwargs = {"include": include} if include is not None else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = mne.io.read_raw(path, preload=preload, verbose="warning", **kwargs)
    messages = [str(w.message).strip().splitlines()[0] for w in caught
                if issubclass(w.category, RuntimeWarning | UserWarning) and str(w.message).strip()]
    return raw, messages


def _rates_of(raw) -> dict[str, float] | None:
    # EDF/BDF/GDF keep each channel's samples per record; MNE resamples all to the highest rate.
    extras = getattr(raw, "_raw_extras", [None])[0] or {}
    n_samps, sel = extras.get("n_samps"), extras.get("sel")
    record = extras.get("record_length")
    if n_samps is None or sel is None or record is None:
        return None
    length = float(np.atleast_1d(record)[0])
    if length <= 0:
        return None
    return {name: float(n_samps[i]) / length for name, i in zip(raw.ch_names, sel, strict=False)}


def read_raw(path: str | Path, *, channels: tuple[str, ...] | list[str] | None = None,
             allow_warnings: bool = False):
    """`read_raw_notes` without the notes: the preloaded ``mne.io.BaseRaw``."""
    return read_raw_notes(path, channels=channels, allow_warnings=allow_warnings)[0]


def read_raw_notes(path: str | Path, *, channels: tuple[str, ...] | list[str] | None = None,
                   allow_warnings: bool = False):
    """Read any MNE-readable recording; `DataError` with a one-line reason when it cannot.

    Parameters
    ----------
    path : str or Path
    channels : sequence of str, optional
        The channels wanted (names as in the file). Where the reader can (EDF, BDF, GDF) only these
        are read, so auxiliary channels at other rates do not resample the EEG; a file whose wanted
        channels themselves mix rates is refused.
    allow_warnings : bool
        Keep reading when MNE warns about the file (e.g. a header record count that does not match
        the file size: a truncated file). By default such a warning is an error.

    Returns
    -------
    raw : mne.io.BaseRaw
        Preloaded.
    notes : tuple of str
        The reader's warnings that were allowed (empty unless ``allow_warnings``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a recording file")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        # MNE would try it as a FieldTrip structure and fail with a confusing internal error.
        raise DataError(f"{path}: a .mat file is not read as a recording (BCI IV 2a's A0xE.mat holds "
                        f"the evaluation labels: pass it as the labels file); {_FORMATS}")
    try:
        raw, messages = _mne_read(path, None, preload=channels is None)
        if channels is not None:
            wanted = [ch for ch in channels if ch in raw.ch_names]
            subset = None
            if path.suffix.lower() in (".edf", ".bdf", ".gdf") and wanted and len(wanted) < len(raw.ch_names):
                subset, sub_messages = _mne_read(path, wanted, preload=True)
                # GDF matches `include` before numbering duplicate labels: use it only if it worked.
                if sorted(subset.ch_names) != sorted(wanted):
                    subset = None
                else:
                    messages = sub_messages
            raw = subset if subset is not None else raw.load_data(verbose="error")
    except DataError:
        raise
    except Exception as exc:  # MNE raises many types for unreadable/truncated files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # MNE picks its reader by suffix (.txt is BOXY fNIRS): say which kind of file it expected.
        raise DataError(f"{path}: MNE cannot read this file as a {suffix or 'suffix-less'} recording "
                        f"({reason}); {_FORMATS}") from None
    notes = check_warnings(path, messages, allow_warnings)
    if raw.n_times == 0:
        raise DataError(f"{path}: the recording holds no samples")
    if channels is not None:
        rates = _rates_of(raw)
        picked = {ch: r for ch, r in (rates or {}).items() if ch in channels}
        if len(set(picked.values())) > 1:
            shown = ", ".join(f"{ch} {r:g} Hz" for ch, r in list(picked.items())[:6])
            raise DataError(f"{path}: the file mixes sampling rates among the wanted channels ({shown}); "
                            "MNE would resample them all to the highest rate")
    return raw, notes


def file_units(raw) -> dict[str, str]:
    """Channel -> unit the file declares, as MNE reports it (MNE has scaled those to volts).

    EDF/BDF/BrainVision headers give a physical dimension per channel (``raw._orig_units``); FIF
    stores SI units by format. Other readers (and empty dimensions) declare nothing.
    """
    orig = getattr(raw, "_orig_units", None) or {}
    out = {ch: str(u) for ch, u in orig.items() if str(u).strip()}
    if not out and any(str(f).lower().endswith((".fif", ".fif.gz")) for f in (raw.filenames or ()) if f):
        out = {ch: "V" for ch in raw.ch_names}
    return out
