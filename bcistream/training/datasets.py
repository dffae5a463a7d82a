"""Training data: resolve a dataset URL to local files, load subjects, fingerprint what was used."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bcistream.data.loader import RECORDING_SUFFIXES, find_subject_files, load_recording
from bcistream.data.profiles import Profile
from bcistream.data.recording import Cue, Recording
from bcistream.errors import DataError
from bcistream.storage import fetch_prefix, open_store

__all__ = ["SubjectData", "concat_recordings", "fingerprint", "fingerprint_digest", "load_subject",
           "load_subjects", "resolve_data"]


def resolve_data(url: str | Path, cache_dir: Path | None = None) -> Path:
    """A local folder holding the dataset at ``url`` (a folder, or ``gs://bucket/prefix`` downloaded
    into ``cache_dir``; unchanged files are not downloaded again)."""
    store = open_store(url, cache_dir=cache_dir)
    folder = fetch_prefix(store, suffixes=(*RECORDING_SUFFIXES, ".mat"))
    if not folder.is_dir():
        raise DataError(f"{url}: no such folder")
    return folder


@dataclass(frozen=True)
class SubjectData:
    """Both sessions of one subject and the files they came from."""

    subject: int
    train: Recording
    evaluation: Recording | None
    files: tuple[Path, ...]

    @property
    def label(self) -> str:
        """``A01`` style name."""
        return f"A{self.subject:02d}"


def load_subject(folder: Path, subject: int, profile: Profile | str | None = None) -> SubjectData:
    """Load session T (and E with its labels, when present) of ``subject`` from ``folder``."""
    found = find_subject_files(folder, subject)
    train = load_recording(found["T"], profile)
    evaluation = load_recording(found["E"], profile) if "E" in found else None
    files = [found["T"]]
    if "E" in found:
        files.append(found["E"])
        mat = found["E"].with_name(f"A{subject:02d}E.mat")
        if mat.is_file():
            files.append(mat)
    if evaluation is not None and any(c.label is None for c in evaluation.cues):
        # Without its label file the E session cannot score anything: treat it as absent.
        evaluation = None
    return SubjectData(subject=subject, train=train, evaluation=evaluation, files=tuple(files))


def load_subjects(folder: Path, subjects: list[int], profile: Profile | str | None = None, *,
                  n_jobs: int = 1, progress=None) -> list[SubjectData]:
    """`load_subject` for each subject, in order; in ``n_jobs`` worker processes when > 1."""
    if n_jobs <= 1 or len(subjects) == 1:
        out = []
        for s in subjects:
            out.append(load_subject(folder, s, profile))
            if progress is not None:
                progress(f"loaded A{s:02d}")
        return out
    from joblib import Parallel, delayed

    out = []
    for data in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(load_subject)(folder, s, profile) for s in subjects):
        out.append(data)
        if progress is not None:
            progress(f"loaded {data.label}")
    return out


def fingerprint(paths: list[Path] | tuple[Path, ...]) -> list[dict[str, object]]:
    """File name, size and SHA-256 of every file (the data a model was trained on)."""
    out = []
    for path in paths:
        digest = hashlib.sha256()
        with Path(path).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        out.append({"file": Path(path).name, "bytes": Path(path).stat().st_size,
                    "sha256": digest.hexdigest()})
    return out


def fingerprint_digest(entries: list[dict[str, object]]) -> str:
    """One SHA-256 over a fingerprint (order-independent): equal data, equal digest."""
    lines = sorted(f"{e['file']}:{e['sha256']}" for e in entries)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def concat_recordings(recordings: list[Recording], source: str = "pooled") -> Recording:
    """Join recordings of one profile in time, separated by one missing (NaN) sample.

    The NaN gap makes the causal filter restart from zero state for each recording, exactly as if
    they were filtered one by one, and no window can span two recordings.
    """
    if not recordings:
        raise DataError("no recordings to pool")
    prof = recordings[0].profile
    parts, cues, offset = [], [], 0
    gap = np.full((prof.n_channels, 1), np.nan)
    for rec in recordings:
        prof.check_compatible(rec.profile)
        parts += [rec.data, gap]
        cues += [Cue(c.sample + offset, c.label, c.rejected) for c in rec.cues]
        offset += rec.n_samples + 1
    return Recording(data=np.concatenate(parts[:-1], axis=1), profile=prof, cues=tuple(cues),
                     source=source)
