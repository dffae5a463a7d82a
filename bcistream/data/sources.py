"""Where recordings come from: files (globs), the BCI IV 2a folder layout, BIDS trees, MOABB.

A *plan* says, per subject (or per group of explicit files), which sources form its training
data and which its test data. Several sources of one side are runs of one session: they are
joined as segments (`join_segments`), so the causal filter restarts per run. Planning reads no
samples; `Source.load` reads one source into a `Recording` through the same loader and checks
as every other file (profile channels only, reader warnings, flat or non-finite, units).
"""

from __future__ import annotations

import glob
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bcistream.data.loader import RECORDING_SUFFIXES, find_subject_files, list_subjects, load_recording
from bcistream.data.profiles import Profile
from bcistream.data.recording import Cue, Recording
from bcistream.errors import DataError

__all__ = ["Plan", "Source", "expand_patterns", "join_segments", "plan_explicit", "plan_folder",
           "source_fingerprint"]

_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Source:
    """One recording to read: a file, a BIDS file, or a MOABB run.

    ``kind`` is ``file``, ``bids`` or ``moabb``; ``ref`` the path or ``(dataset, subject,
    session, run)``; ``name`` what messages and ``info`` show.
    """

    kind: str
    name: str
    path: Path | None = None
    ref: tuple = ()

    def load(self, profile: Profile, *, allow_warnings: bool = False) -> Recording:
        """Read the source into the profile's layout (`DataError` with one line when it cannot)."""
        if self.kind == "file":
            return load_recording(self.path, profile, allow_warnings=allow_warnings)
        if self.kind == "bids":
            from bcistream.data.bids import load_bids

            return load_bids(self.path, profile, allow_warnings=allow_warnings)
        if self.kind == "moabb":
            from bcistream.data.moabb_source import load_moabb_run

            return load_moabb_run(*self.ref, profile=profile)
        raise ValueError(f"unknown source kind {self.kind!r}")


@dataclass(frozen=True)
class Plan:
    """The sources of one model's data: ``train`` runs (joined) and ``test`` runs (joined)."""

    label: str
    subject: str
    train: tuple[Source, ...]
    test: tuple[Source, ...] = ()
    extra_files: tuple[Path, ...] = field(default=())

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every source, training first."""
        return self.train + self.test


def join_segments(recordings: list[Recording], source: str = "joined") -> Recording:
    """Join recordings of one profile in time, separated by one missing (NaN) sample.

    The NaN gap makes the causal filter restart from zero state for each recording, exactly as if
    they were filtered one by one, and no window can span two recordings.
    """
    if not recordings:
        raise DataError("no recordings to join")
    if len(recordings) == 1:
        return recordings[0]
    prof = recordings[0].profile
    parts, cues, offset, notes = [], [], 0, []
    gap = np.full((prof.n_channels, 1), np.nan)
    for rec in recordings:
        prof.check_compatible(rec.profile)
        parts += [rec.data, gap]
        cues += [Cue(c.sample + offset, c.label, c.rejected) for c in rec.cues]
        offset += rec.n_samples + 1
        notes += [f"{rec.source}: {n}" for n in rec.notes]
    return Recording(data=np.concatenate(parts[:-1], axis=1), profile=prof, cues=tuple(cues),
                     source=source, notes=tuple(notes))


def expand_patterns(patterns: list[str] | tuple[str, ...], base: Path | None = None) -> list[Path]:
    """Files matching each glob (``S001R0[46].edf``, ``runs/*.xdf``), in order, without repeats.

    A pattern without glob characters must name an existing file; a glob must match at least one
    recording. Relative patterns are taken relative to ``base`` when given.
    """
    out: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        full = text if base is None or Path(text).is_absolute() else str(base / text)
        if _GLOB.search(text):
            hits = [Path(p) for p in sorted(glob.glob(full)) if Path(p).is_file()
                    and p.lower().endswith(RECORDING_SUFFIXES)]
            if not hits:
                raise DataError(f"{full}: matches no recording ({', '.join(RECORDING_SUFFIXES)})")
        else:
            path = Path(full)
            if not path.exists():
                raise DataError(f"{path}: no such file")
            if path.is_dir():
                raise DataError(f"{path}: is a folder; give files or a glob such as {path}/*.edf")
            hits = [path]
        out += [h for h in hits if h not in out]
    return out


def _common_label(paths: list[Path]) -> str:
    stems = [p.name.split(".")[0].removesuffix("_raw").removesuffix("_eeg") for p in paths]
    prefix = stems[0]
    for stem in stems[1:]:
        while not stem.startswith(prefix):
            prefix = prefix[:-1]
    label = re.sub(r"[^A-Za-z0-9]+$", "", prefix)
    label = re.sub(r"(?i)[-_.]?(run|r|ses|session)[-_]?\d*$", "", label).rstrip("-_. ")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label)
    return label or "files"


def plan_explicit(train: list[str], test: list[str] | None, base: Path | None = None) -> Plan:
    """One plan from explicit files: ``train`` runs joined, ``test`` runs joined (may be none)."""
    train_paths = expand_patterns(train, base)
    test_paths = expand_patterns(test or [], base)
    both = set(train_paths) & set(test_paths)
    if both:
        raise DataError(f"{sorted(both)[0]}: is both a training and a test file")
    label = _common_label(train_paths)
    return Plan(label=label, subject=label,
                train=tuple(Source("file", str(p), path=p) for p in train_paths),
                test=tuple(Source("file", str(p), path=p) for p in test_paths))


def _subject_numbers(spec: str, available: list[int]) -> list[int]:
    if spec == "all":
        return available
    try:
        values = [int(part) for part in str(spec).split(",")]
    except ValueError:
        raise DataError(f"--subject: must be a number, a comma list or 'all', got '{spec}'") from None
    if any(v < 1 or v > 99 for v in values):
        raise DataError(f"--subject: numbers must be 1..99, got '{spec}'")
    return values


def plan_folder(folder: Path, subject: str = "all", train: list[str] | None = None,
                test: list[str] | None = None) -> list[Plan]:
    """Plans of a BCI IV 2a folder (``A0xT`` = train, ``A0xE`` + ``A0xE.mat`` = test) or BIDS tree.

    ``train``/``test`` select BIDS entities (``ses-T``, ``run-1``); the 2a layout takes none.
    """
    if (folder / "dataset_description.json").is_file():
        from bcistream.data.bids import plan_bids

        return plan_bids(folder, subject, train, test)
    if train or test:
        raise DataError(f"{folder}: --train/--test with --data select BIDS entities (ses-X, run-N), "
                        "but this is not a BIDS tree; give files or globs without --data instead")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    numbers = _subject_numbers(subject, list_subjects(folder) if subject == "all" else [])
    plans = []
    for s in numbers:
        found = find_subject_files(folder, s)
        extra = ()
        if "E" in found:
            mat = found["E"].with_name(f"A{s:02d}E.mat")
            extra = (mat,) if mat.is_file() else ()
        plans.append(Plan(label=f"A{s:02d}", subject=str(s),
                          train=(Source("file", str(found["T"]), path=found["T"]),),
                          test=(Source("file", str(found["E"]), path=found["E"]),) if "E" in found else (),
                          extra_files=extra))
    return plans


def source_fingerprint(source: Source, recording: Recording) -> dict[str, object]:
    """File name, size and SHA-256 of a file source; of the samples for sources without a file."""
    digest = hashlib.sha256()
    if source.path is not None and source.path.is_file():
        with source.path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"file": source.path.name, "bytes": source.path.stat().st_size, "sha256": digest.hexdigest()}
    digest.update(np.ascontiguousarray(recording.data).tobytes())
    digest.update(repr([(c.sample, c.label) for c in recording.cues]).encode())
    return {"file": source.name, "bytes": int(recording.data.nbytes), "sha256": digest.hexdigest()}
