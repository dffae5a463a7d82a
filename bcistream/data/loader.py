"""Read recordings through MNE into a `Recording`, following a dataset profile.

Classes are mapped by annotation DESCRIPTION, never by the integer ids that
``mne.events_from_annotations`` assigns (those depend on which descriptions a file contains: in
BCI IV 2a A04T they shift by two). Evaluation sessions of BCI IV 2a take their labels from the
``classlabel`` variable of ``A0xE.mat`` beside the GDF file. Files are read by
`bcistream.data.reader` (MNE) and `bcistream.data.xdf`; its names stay importable from here.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from bcistream.data.profiles import Profile, load_profile
from bcistream.data.quality import check_signal
from bcistream.data.reader import BENIGN_WARNINGS as BENIGN_WARNINGS  # importable here as before
from bcistream.data.reader import check_warnings, file_units, read_raw, read_raw_notes
from bcistream.data.recording import Cue, Recording
from bcistream.errors import DataError

__all__ = [
    "RECORDING_SUFFIXES",
    "check_warnings",
    "file_channel_names",
    "file_units",
    "find_subject_files",
    "list_subjects",
    "load_recording",
    "labels_path_for",
    "read_labels_mat",
    "read_raw",
    "read_raw_notes",
    "recording_from_raw",
]

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".gdf", ".edf", ".bdf", ".fif", ".fif.gz", ".xdf")


def read_labels_mat(path: Path, profile: Profile) -> list[str]:
    """Read the true classes of an evaluation session from a ``classlabel`` .mat file.

    Parameters
    ----------
    path : Path
        ``A0xE.mat`` with variable ``classlabel`` (values 1..n_classes, in cue order).
    profile : Profile
        Gives the class order: value k is the k-th class of the profile.

    Returns
    -------
    list of str
        Class names in cue order.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read label file (expected a MATLAB .mat file with a "
                        f"'classlabel' variable; {exc})") from None
    if "classlabel" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no 'classlabel' variable (found {keys})")
    values = np.asarray(mat["classlabel"]).ravel()
    names = profile.class_names
    if values.size == 0 or not np.all(np.isin(values, np.arange(1, len(names) + 1))):
        raise DataError(f"{path}: 'classlabel' must hold values 1..{len(names)}")
    return [names[int(v) - 1] for v in values]


def labels_path_for(path: str | Path) -> Path | None:
    """The ``A0xE.mat`` label file beside an ``A0xE`` recording, if there is one.

    ``A01E.gdf`` / ``A01E_raw.fif`` -> ``A01E.mat`` in the same folder (BCI IV 2a ships the
    evaluation labels apart from the recordings); ``None`` for other names or when it is absent.
    """
    path = Path(path)
    match = re.match(r"(A\d\dE)", path.name)
    if not match:
        return None
    candidate = path.with_name(match.group(1) + ".mat")
    return candidate if candidate.is_file() else None


def _cues_from_annotations(raw, profile: Profile) -> tuple[list[int], list, list]:
    sfreq = raw.info["sfreq"]
    # Onsets count from meas_date when the annotations carry orig_time, else from the first sample.
    shift = raw.first_samp if raw.annotations.orig_time is not None else 0
    samples = np.round(np.asarray(raw.annotations.onset) * sfreq).astype(int) - shift
    cue_samples, cue_labels, rejects = [], [], []
    markers = profile.marker_map
    for sample, desc in zip(samples, raw.annotations.description, strict=True):
        meaning = markers.map(str(desc))
        if meaning.kind == "class":
            cue_samples.append(int(sample))
            cue_labels.append(meaning.label)
        elif meaning.kind == "unknown-cue":
            cue_samples.append(int(sample))
            cue_labels.append(None)
        elif meaning.kind == "reject":
            rejects.append(int(sample))
    order = np.argsort(cue_samples, kind="stable")
    return [cue_samples[i] for i in order], [cue_labels[i] for i in order], rejects


def _rejected_flags(cue_samples: list[int], rejects: list[int], lookahead: int) -> list[bool]:
    flags = [False] * len(cue_samples)
    starts = np.asarray(cue_samples)
    for r in rejects:
        # A rejection marker sits on the trial start: it rejects the next cue of that trial.
        idx = int(np.searchsorted(starts, r, side="left"))
        if idx < len(starts) and starts[idx] - r <= lookahead:
            flags[idx] = True
    return flags


def _in_volts(data: np.ndarray, prof: Profile, declared: dict[str, str], source: str) -> np.ndarray:
    """Apply the input contract: declared voltage units pass (already scaled), others are scaled
    by the profile's ``units`` or must be plausible as volts."""
    from bcistream.data.contract import UnitError, require_plausible_volts, volts_per_unit

    wrong = []
    for ch in prof.channels:
        if ch in declared:
            try:
                volts_per_unit(declared[ch])
            except UnitError:
                wrong.append(f"{ch} ({declared[ch]})")
    if wrong:
        raise UnitError(f"{source}: channel(s) {', '.join(wrong[:6])} declare a unit that is not a "
                        "voltage; the profile's channels must be EEG")
    undeclared = [i for i, ch in enumerate(prof.channels) if ch not in declared]
    if not undeclared:
        return data
    if prof.units is not None:
        data = data.copy()
        data[undeclared] *= prof.volts_per_unit
        return data
    require_plausible_volts(data[undeclared], source,
                            'the file declares no unit: add units = "microvolts" (or V, mV, nV) '
                            "to the profile")
    return data


def file_channel_names(profile: Profile) -> list[str]:
    """Names under which the profile's channels may appear in a file (``rename`` keys and names)."""
    names = [src for src, dst in profile.rename.items() if dst in profile.channels]
    return list(dict.fromkeys([*names, *profile.channels]))


def load_recording(
    path: str | Path,
    profile: Profile | str | None = None,
    *,
    labels: str | Path | None = None,
    allow_warnings: bool = False,
    stream: str | None = None,
) -> Recording:
    """Load a recording (GDF/EDF/BDF/FIF/XDF or anything MNE reads) into the profile's layout.

    Parameters
    ----------
    path : str or Path
        The recording. ``.xdf`` files are read by `bcistream.data.xdf` (pyxdf), others by MNE.
    profile : Profile, str or None
        Profile, built-in name or TOML path (default ``bci-iv-2a``).
    labels : str, Path or None
        A ``classlabel`` .mat file for cues of unknown class. By default ``A0xE.mat`` beside an
        ``A0xE`` recording is used when present; without it such cues stay unlabelled.
    allow_warnings : bool
        Read files the reader warns about (truncated headers …); their warnings become notes.
    stream : str, optional
        XDF only: name or type of the EEG stream (default: the one stream of type EEG).

    Returns
    -------
    Recording
        EEG channels only, in profile order, volts; NaN where the file marks samples missing.

    Raises
    ------
    DataError
        Missing, unreadable or truncated file, missing channels, wrong or mixed rates, label count
        mismatch, flat or non-finite channels.
    """
    path = Path(path)
    prof = load_profile(profile)
    if path.suffix.lower() == ".xdf":
        from bcistream.data.xdf import read_xdf

        content = read_xdf(path, stream=stream, allow_warnings=allow_warnings)
        raw, notes, declared = content.raw, content.notes, content.declared_units
    else:
        raw, notes = read_raw_notes(path, channels=file_channel_names(prof), allow_warnings=allow_warnings)
        declared = None
    label_file = Path(labels) if labels is not None else labels_path_for(path)
    unknown_labels = read_labels_mat(label_file, prof) if label_file else None
    return recording_from_raw(raw, prof, unknown_labels=unknown_labels, source=str(path),
                              labels_source=str(label_file) if label_file else None, notes=notes,
                              declared_units=declared)


def recording_from_raw(
    raw,
    profile: Profile | str | None = None,
    *,
    unknown_labels: list[str] | None = None,
    source: str = "memory",
    labels_source: str | None = None,
    notes: tuple[str, ...] = (),
    declared_units: dict[str, str] | None = None,
) -> Recording:
    """Turn an MNE Raw (read from a file or made in memory) into a `Recording`.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Preloaded raw data; its channels are renamed in place by the profile's ``rename``.
    profile : Profile, str or None
        Profile, built-in name or TOML path (default ``bci-iv-2a``).
    unknown_labels : list of str, optional
        Class names of the cues of unknown class, in cue order (e.g. from ``classlabel``).
    source : str
        Where the data came from (used in messages).
    labels_source : str, optional
        Where ``unknown_labels`` came from (used in messages).
    notes : tuple of str
        Reader warnings the user allowed (kept on the recording).
    declared_units : dict, optional
        File channel name -> the unit the source declared, for samples the reader ALREADY scaled
        to volts. Default: `file_units` (what MNE reports). Channels without a declared unit take
        the profile's ``units``, or must be plausible as volts (`bcistream.data.contract`).

    Raises
    ------
    DataError
        Missing channels, wrong rate, label count mismatch, flat or non-finite channels,
        implausible undeclared units (`contract.UnitError`).
    """
    prof = load_profile(profile)
    declared = file_units(raw) if declared_units is None else dict(declared_units)
    rename = {k: v for k, v in prof.rename.items() if k in raw.ch_names}
    declared = {rename.get(k, k): u for k, u in declared.items()}
    if rename:
        raw.rename_channels(rename)
    missing = [ch for ch in prof.channels if ch not in raw.ch_names]
    if missing:
        shown = ", ".join(raw.ch_names[:8]) + (" …" if len(raw.ch_names) > 8 else "")
        raise DataError(
            f"{source}: lacks {len(missing)} of the {prof.n_channels} channels of profile "
            f"'{prof.name}' (e.g. {', '.join(missing[:4])}); the file has "
            f"{len(raw.ch_names)} channels: {shown}"
        )
    sfreq = float(raw.info["sfreq"])
    if abs(sfreq - prof.sfreq) > 1e-6:
        raise DataError(
            f"{source}: sampling rate {sfreq:g} Hz, profile '{prof.name}' expects {prof.sfreq:g} Hz"
        )
    data = raw.get_data(picks=list(prof.channels)).astype(np.float64, copy=False)
    if prof.missing_value is not None:
        # Missing stretches come out of MNE as the physical minimum in every channel at once.
        gone = np.all(np.abs(data - prof.missing_value) < 1e-12, axis=0)
        data[:, gone] = np.nan
    check_signal(data, prof.channels, source)
    data = _in_volts(data, prof, declared, source)
    cue_samples, cue_labels, rejects = _cues_from_annotations(raw, prof)
    flags = _rejected_flags(cue_samples, rejects, int(round(prof.reject_lookahead_s * sfreq)))
    if unknown_labels is not None:
        unknown = [i for i, lab in enumerate(cue_labels) if lab is None]
        if len(unknown_labels) != len(unknown):
            raise DataError(
                f"{labels_source or 'labels'}: {len(unknown_labels)} labels but {Path(source).name} has "
                f"{len(unknown)} cues of unknown class"
            )
        for i, lab in zip(unknown, unknown_labels, strict=True):
            cue_labels[i] = lab
    cues = tuple(
        Cue(sample=s, label=lab, rejected=rej)
        for s, lab, rej in zip(cue_samples, cue_labels, flags, strict=True)
    )
    if not cues:
        log.warning("%s: no cue annotations of profile '%s' found", source, prof.name)
    return Recording(data=data, profile=prof, cues=cues, source=source, notes=tuple(notes))


def _cache_folders() -> list[Path]:
    # MNE's / MOABB's usual download cache for BNCI 2014-001 (the 2a data).
    home = Path.home()
    return [
        home / "mne_data" / "MNE-bnci-data" / "database" / "data-sets" / "001-2014",
        home / "mne_data" / "BCICIV_2a_gdf",
    ]


def find_subject_files(folder: str | Path | None, subject: int) -> dict[str, Path]:
    """Find the training (``T``) and evaluation (``E``) recordings of a 2a-style subject.

    Looks for ``A0<subject>T`` / ``A0<subject>E`` with any readable suffix (``.gdf``, ``.edf``,
    ``.bdf``, ``_raw.fif``) in ``folder``, then in MNE's usual cache folders.

    Returns
    -------
    dict
        ``{"T": path, "E": path}``; ``E`` is absent when the folder has no evaluation session.

    Raises
    ------
    DataError
        The folder does not exist, or holds no training session for the subject.
    """
    folders = [Path(folder)] if folder is not None else []
    if folder is not None and not Path(folder).is_dir():
        raise DataError(f"{folder}: no such folder")
    folders += [f for f in _cache_folders() if f.is_dir()]
    found: dict[str, Path] = {}
    for base in folders:
        for session in ("T", "E"):
            if session in found:
                continue
            stem = f"A{subject:02d}{session}"
            for cand in sorted(base.glob(stem + "*")):
                if any(cand.name.lower().endswith(s) for s in RECORDING_SUFFIXES):
                    found[session] = cand
                    break
    if "T" not in found:
        where = ", ".join(str(f) for f in folders) or "(no folder)"
        raise DataError(
            f"no training recording A{subject:02d}T.(gdf|edf|bdf|_raw.fif) for subject {subject} "
            f"in {where}"
        )
    return found


def list_subjects(folder: str | Path) -> list[int]:
    """Subjects with a training recording in ``folder`` (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    subjects = set()
    for cand in folder.iterdir():
        match = re.match(r"A(\d\d)T", cand.name)
        if match and any(cand.name.lower().endswith(s) for s in RECORDING_SUFFIXES):
            subjects.add(int(match.group(1)))
    if not subjects:
        raise DataError(f"{folder}: no recordings named A0xT.gdf/.edf/_raw.fif")
    return sorted(subjects)
