"""BIDS EEG trees (``sub-*/[ses-*/]eeg/*_eeg.*`` with ``*_events.tsv``) through ``mne-bids``.

Training and test data are chosen by entities: ``ses-T`` (a session) or ``run-1`` (a run);
several values are several runs joined as segments. By default the first session trains and the
last one tests (one session: everything trains, nothing tests). The events' ``trial_type`` column
becomes the annotation descriptions, mapped through the profile's class map like any file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from bcistream.data.loader import recording_from_raw
from bcistream.data.profiles import Profile
from bcistream.data.reader import check_warnings
from bcistream.data.recording import Recording
from bcistream.errors import DataError

__all__ = ["is_entity_filter", "load_bids", "plan_bids"]

_ENTITY = re.compile(r"^(ses|run)-([A-Za-z0-9]+)$")
_EXTENSIONS = [".edf", ".bdf", ".vhdr", ".set", ".fif"]
#: mne-bids notes about optional sidecars: they say nothing about the samples.
_BIDS_BENIGN = re.compile(r"(electrodes\.tsv|coordsystem|participants\.tsv|channels\.tsv|scans\.tsv|"
                          r"Did not find|not set|not found|No BIDS -> MNE mapping|Converting data files)",
                          re.IGNORECASE)


def is_entity_filter(values: list[str] | tuple[str, ...]) -> bool:
    """Whether every value looks like ``ses-X`` or ``run-N`` (BIDS selection, not file globs)."""
    return bool(values) and all(_ENTITY.match(str(v)) for v in values)


def _selection(values: list[str] | tuple[str, ...] | None) -> tuple[list[str], list[str]]:
    sessions, runs = [], []
    for value in values or []:
        m = _ENTITY.match(str(value))
        if not m:
            raise DataError(f"BIDS selection '{value}': use ses-LABEL or run-N (e.g. --train ses-T)")
        (sessions if m.group(1) == "ses" else runs).append(m.group(2))
    return sessions, runs


def _find(root: Path, subject: str, sessions: list[str], runs: list[str]) -> list:
    from mne_bids import find_matching_paths

    paths = find_matching_paths(root, subjects=subject, sessions=sessions or None, runs=runs or None,
                                datatypes="eeg", suffixes="eeg", extensions=_EXTENSIONS)
    return sorted(paths, key=lambda p: str(p.fpath))


def plan_bids(root: Path, subject: str = "all", train: list[str] | None = None,
              test: list[str] | None = None) -> list:
    """One `Plan` per subject of the BIDS tree at ``root``."""
    from mne_bids import get_entity_vals

    from bcistream.data.sources import Plan, Source

    subjects = sorted(get_entity_vals(root, "subject"))
    if not subjects:
        raise DataError(f"{root}: a BIDS tree without sub-* folders")
    if subject != "all":
        wanted = [s.strip() for s in str(subject).split(",")]
        chosen = []
        for w in wanted:
            hit = [s for s in subjects if s == w or (w.isdigit() and s.isdigit() and int(s) == int(w))]
            if not hit:
                raise DataError(f"{root}: no subject '{w}' (subjects: {', '.join(subjects)})")
            chosen += hit
        subjects = chosen
    plans = []
    for sub in subjects:
        if train:
            tr_ses, tr_runs = _selection(train)
            te_ses, te_runs = _selection(test)
        else:
            sessions = sorted(get_entity_vals(root / f"sub-{sub}", "session"))
            tr_ses = sessions[:1]
            te_ses = sessions[-1:] if len(sessions) > 1 else []
            tr_runs, te_runs = [], []
            if test:
                te_ses, te_runs = _selection(test)
        train_paths = _find(root, sub, tr_ses, tr_runs)
        if not train_paths:
            want = ", ".join([*(f"ses-{s}" for s in tr_ses), *(f"run-{r}" for r in tr_runs)]) or "any"
            raise DataError(f"{root}: sub-{sub} has no EEG recording for {want}")
        test_paths = _find(root, sub, te_ses, te_runs) if (te_ses or te_runs) else []
        test_paths = [p for p in test_paths if p not in train_paths]
        plans.append(Plan(label=f"sub-{sub}", subject=sub,
                          train=tuple(Source("bids", str(p.fpath), path=Path(p.fpath)) for p in train_paths),
                          test=tuple(Source("bids", str(p.fpath), path=Path(p.fpath)) for p in test_paths)))
    return plans


def load_bids(path: Path, profile: Profile, *, allow_warnings: bool = False) -> Recording:
    """Read one BIDS EEG file (with its events.tsv) into the profile's layout."""
    from mne_bids import get_bids_path_from_fname, read_raw_bids

    try:
        bids_path = get_bids_path_from_fname(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = read_raw_bids(bids_path, verbose="error")
            raw.load_data(verbose="error")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001  (mne-bids raises many types for broken trees)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: mne-bids cannot read this file ({reason})") from None
    messages = [str(w.message).strip().splitlines()[0] for w in caught
                if issubclass(w.category, RuntimeWarning | UserWarning) and str(w.message).strip()]
    notes = check_warnings(path, [m for m in messages if not _BIDS_BENIGN.search(m)], allow_warnings)
    return recording_from_raw(raw, profile, source=str(path), notes=notes)
