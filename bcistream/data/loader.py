"""Read recordings through MNE into a `Recording`, following a dataset profile.

Classes are mapped by annotation DESCRIPTION, never by the integer ids that
``mne.events_from_annotations`` assigns (those depend on which descriptions a file contains: in
BCI IV 2a A04T they shift by two). Evaluation sessions of BCI IV 2a take their labels from the
``classlabel`` variable of ``A0xE.mat`` beside the GDF file.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np

from bcistream.data.profiles import Profile, load_profile
from bcistream.data.recording import Cue, Recording
from bcistream.errors import DataError

__all__ = [
    "RECORDING_SUFFIXES",
    "find_subject_files",
    "list_subjects",
    "load_recording",
    "read_labels_mat",
    "read_raw",
    "recording_from_raw",
]

log = logging.getLogger(__name__)

RECORDING_SUFFIXES = (".gdf", ".edf", ".bdf", ".fif", ".fif.gz")


def read_raw(path: str | Path):
    """Read any MNE-readable recording; `DataError` with a one-line reason when it cannot."""
    import mne

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a recording file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as exc:  # MNE raises many types for unreadable/truncated files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: MNE cannot read this file ({reason})") from None
    if raw.n_times == 0:
        raise DataError(f"{path}: the recording holds no samples")
    return raw


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
        raise DataError(f"{path}: cannot read label file ({exc})") from None
    if "classlabel" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no 'classlabel' variable (found {keys})")
    values = np.asarray(mat["classlabel"]).ravel()
    names = profile.class_names
    if values.size == 0 or not np.all(np.isin(values, np.arange(1, len(names) + 1))):
        raise DataError(f"{path}: 'classlabel' must hold values 1..{len(names)}")
    return [names[int(v) - 1] for v in values]


def _labels_path_for(path: Path) -> Path | None:
    # A01E.gdf / A01E_raw.fif -> A01E.mat in the same folder.
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
    for sample, desc in zip(samples, raw.annotations.description, strict=True):
        desc = str(desc)
        if desc in profile.classes:
            cue_samples.append(int(sample))
            cue_labels.append(profile.classes[desc])
        elif profile.unknown_cue is not None and desc == profile.unknown_cue:
            cue_samples.append(int(sample))
            cue_labels.append(None)
        elif profile.reject_marker is not None and desc == profile.reject_marker:
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


def load_recording(
    path: str | Path,
    profile: Profile | str | None = None,
    *,
    labels: str | Path | None = None,
) -> Recording:
    """Load a recording (GDF/EDF/BDF/FIF or anything MNE reads) into the profile's layout.

    Parameters
    ----------
    path : str or Path
        The recording.
    profile : Profile, str or None
        Profile, built-in name or TOML path (default ``bci-iv-2a``).
    labels : str, Path or None
        A ``classlabel`` .mat file for cues of unknown class. By default ``A0xE.mat`` beside an
        ``A0xE`` recording is used when present; without it such cues stay unlabelled.

    Returns
    -------
    Recording
        EEG channels only, in profile order, volts; NaN where the file marks samples missing.

    Raises
    ------
    DataError
        Missing or unreadable file, missing channels, wrong rate, label count mismatch.
    """
    path = Path(path)
    raw = read_raw(path)
    label_file = Path(labels) if labels is not None else _labels_path_for(path)
    unknown_labels = read_labels_mat(label_file, load_profile(profile)) if label_file else None
    return recording_from_raw(raw, profile, unknown_labels=unknown_labels, source=str(path),
                              labels_source=str(label_file) if label_file else None)


def recording_from_raw(
    raw,
    profile: Profile | str | None = None,
    *,
    unknown_labels: list[str] | None = None,
    source: str = "memory",
    labels_source: str | None = None,
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

    Raises
    ------
    DataError
        Missing channels, wrong rate, label count mismatch.
    """
    prof = load_profile(profile)
    rename = {k: v for k, v in prof.rename.items() if k in raw.ch_names}
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
    return Recording(data=data, profile=prof, cues=cues, source=source)


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
