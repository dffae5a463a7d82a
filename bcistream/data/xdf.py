"""XDF files (LabRecorder, the format LSL rigs record) through ``pyxdf``.

One EEG stream becomes the samples, a marker stream becomes cue annotations. ``pyxdf`` applies
the recorded clock offsets (``synchronize_clocks``) and de-jitters regular streams, so marker and
EEG time stamps are on one clock; a marker lands on the EEG sample nearest its time stamp. Breaks
that pyxdf finds in the EEG stream (``info["segments"]``) become one missing (NaN) sample, so the
causal filter restarts as after any source restart. Units come from the channel metadata
(``desc/channels/channel/unit``); the samples are scaled to volts here and the declared units are
handed on, so `recording_from_raw` applies the input contract to undeclared channels only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bcistream.data.reader import check_warnings
from bcistream.errors import DataError

__all__ = ["XdfContent", "read_xdf"]

log = logging.getLogger(__name__)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().strip().splitlines()[0])


def _first(info: dict[str, Any], key: str, default: str = "") -> str:
    value = info.get(key)
    if isinstance(value, list) and value:
        value = value[0]
    return default if value is None else str(value)


def _channels(stream: dict[str, Any]) -> list[dict[str, str]]:
    """Channel metadata (label, unit, type) of a stream, ``[]`` when the header has none."""
    desc = stream["info"].get("desc")
    try:
        chans = desc[0]["channels"][0]["channel"]
    except (TypeError, KeyError, IndexError):
        return []
    return [{k: _first(ch, k) for k in ("label", "unit", "type")} for ch in chans if isinstance(ch, dict)]


def _describe(streams: list[dict[str, Any]]) -> str:
    return ", ".join(f"'{_first(s['info'], 'name')}' ({_first(s['info'], 'type') or 'no type'})"
                     for s in streams)


def _pick_eeg(streams: list[dict[str, Any]], wanted: str | None, path: Path) -> dict[str, Any]:
    numeric = [s for s in streams if _first(s["info"], "channel_format") != "string"]
    if wanted is not None:
        hits = [s for s in numeric if wanted in (_first(s["info"], "name"), _first(s["info"], "type"))]
    else:
        hits = [s for s in numeric if _first(s["info"], "type").lower() == "eeg"]
    if len(hits) == 1:
        return hits[0]
    what = f"named or typed '{wanted}'" if wanted else "of type EEG"
    problem = "no signal stream" if not hits else f"{len(hits)} signal streams"
    raise DataError(f"{path}: {problem} {what} (streams: {_describe(streams) or 'none'}); "
                    "the Python API chooses one with load_recording(path, profile, stream=NAME)")


def _markers(streams: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
    times: list[float] = []
    values: list[str] = []
    for s in streams:
        if _first(s["info"], "channel_format") != "string":
            continue
        for t, sample in zip(s["time_stamps"], s["time_series"], strict=False):
            times.append(float(t))
            values.append(str(sample[0]) if sample else "")
    order = np.argsort(times, kind="stable")
    return [times[i] for i in order], [values[i] for i in order]


class XdfContent:
    """The EEG stream of an XDF file as an MNE Raw, with its declared units and reader notes."""

    def __init__(self, raw, declared_units: dict[str, str], notes: tuple[str, ...]) -> None:
        self.raw = raw
        self.declared_units = declared_units
        self.notes = notes


def read_xdf(path: str | Path, *, stream: str | None = None, allow_warnings: bool = False) -> XdfContent:
    """Read one EEG stream and its markers from an XDF file.

    Parameters
    ----------
    path : str or Path
        The ``.xdf`` file.
    stream : str, optional
        Name or type of the EEG stream; default the one numeric stream of type ``EEG``.
    allow_warnings : bool
        Read a file pyxdf warns about (corrupt or chopped chunks, a stream without footer) anyway.

    Returns
    -------
    XdfContent
        ``raw``: preloaded ``mne.io.RawArray`` at the stream's nominal rate, samples in volts where
        units are declared (else as stored), one annotation per marker (description = marker text);
        ``declared_units``: channel -> declared unit; ``notes``: the allowed warnings.

    Raises
    ------
    DataError
        Unreadable file, no or several EEG streams, irregular rate, truncation (unless allowed),
        a unit that is not a voltage unit.
    """
    import mne
    import pyxdf

    from bcistream.data.contract import UnitError, volts_per_unit

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    collect = _Collect()
    xdf_log = logging.getLogger("pyxdf")
    xdf_log.addHandler(collect)
    try:
        streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=True, dejitter_timestamps=True)
    except Exception as exc:  # noqa: BLE001  (pyxdf raises bare Exception/IOError/ValueError)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: pyxdf cannot read this file ({reason})") from None
    finally:
        xdf_log.removeHandler(collect)
    eeg = _pick_eeg(streams, stream, path)
    name = _first(eeg["info"], "name")
    messages = list(collect.messages)
    n = len(eeg["time_stamps"])
    footer = eeg.get("footer")
    if not footer:
        messages.append(f"stream '{name}' has no footer (the recording was not closed properly)")
    else:
        counted = _first(footer.get("info", [{}])[0] if isinstance(footer.get("info"), list)
                         else footer.get("info") or {}, "sample_count")
        if counted.isdigit() and int(counted) != n:
            messages.append(f"stream '{name}' holds {n} samples but its footer counts {counted}")
    notes = check_warnings(path, messages, allow_warnings)
    if n == 0:
        raise DataError(f"{path}: stream '{name}' holds no samples")
    srate = float(_first(eeg["info"], "nominal_srate", "0") or 0)
    if srate <= 0:
        raise DataError(f"{path}: stream '{name}' has an irregular rate; EEG needs a nominal rate")
    series = np.asarray(eeg["time_series"], dtype=np.float64)
    meta = _channels(eeg)
    n_ch = series.shape[1]
    labels = [m["label"] or f"ch{i + 1}" for i, m in enumerate(meta)] if len(meta) == n_ch else (
        [f"ch{i + 1}" for i in range(n_ch)])
    declared: dict[str, str] = {}
    data = series.T.copy()
    for i, m in enumerate(meta if len(meta) == n_ch else []):
        unit = m["unit"].strip()
        if not unit:
            continue
        try:
            data[i] *= volts_per_unit(unit)
        except UnitError:
            if m["type"].lower() in ("", "eeg"):
                raise UnitError(f"{path}: channel {labels[i]} of stream '{name}' declares unit "
                                f"'{unit}', not a voltage") from None
            continue
        declared[labels[i]] = unit
    # Breaks in the stream become one NaN sample each: the filter restarts, no window spans them.
    stamps = np.asarray(eeg["time_stamps"], dtype=np.float64)
    segments = eeg["info"].get("segments") or [(0, n - 1)]
    parts, times = [], []
    for k, (start, end) in enumerate(segments):
        if k:
            parts.append(np.full((n_ch, 1), np.nan))
            times.append(np.array([np.nan]))
        parts.append(data[:, start:end + 1])
        times.append(stamps[start:end + 1])
    data = np.concatenate(parts, axis=1)
    clock = np.concatenate(times)
    marker_times, marker_values = _markers(streams)
    onsets, descs, outside = [], [], 0
    valid = np.flatnonzero(np.isfinite(clock))
    for t, value in zip(marker_times, marker_values, strict=True):
        # Nearest EEG sample (on pyxdf's synchronised clock); markers outside the stream are dropped.
        j = int(np.searchsorted(clock[valid], t))
        cands = [c for c in (j - 1, j) if 0 <= c < valid.size]
        best = min(cands, key=lambda c: abs(clock[valid[c]] - t)) if cands else None
        if best is None or abs(clock[valid[best]] - t) > 1.0 / srate:
            outside += 1
            continue
        onsets.append(valid[best] / srate)
        descs.append(value)
    if outside:
        log.warning("%s: %d marker(s) lie outside the EEG stream '%s' (or in a break) and are not cues",
                    path, outside, name)
    info = mne.create_info(labels, srate, ch_types="eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), descs))
    return XdfContent(raw, declared, notes)
