"""Training data: resolve a dataset URL to local files, load subjects, fingerprint what was used."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bcistream.data.loader import RECORDING_SUFFIXES
from bcistream.data.profiles import Profile, load_profile
from bcistream.data.recording import Recording
from bcistream.data.sources import Plan, join_segments, plan_explicit, plan_folder, source_fingerprint
from bcistream.errors import DataError
from bcistream.storage import fetch_prefix, open_store

__all__ = ["DataSpec", "SubjectData", "concat_recordings", "data_profile", "fingerprint",
           "fingerprint_digest", "load_data", "load_plan", "load_subject", "load_subjects", "plan_data",
           "resolve_data"]


def resolve_data(url: str | Path, cache_dir: Path | None = None) -> Path:
    """A local folder holding the dataset at ``url`` (a folder, or ``gs://bucket/prefix`` downloaded
    into ``cache_dir``; unchanged files are not downloaded again)."""
    store = open_store(url, cache_dir=cache_dir)
    # .mat: 2a labels; BIDS sidecars and multi-file formats travel with their recordings.
    folder = fetch_prefix(store, suffixes=(*RECORDING_SUFFIXES, ".mat", ".tsv", ".json", ".vhdr", ".vmrk",
                                           ".eeg", ".set", ".fdt"))
    if not folder.is_dir():
        raise DataError(f"{url}: no such folder")
    return folder


@dataclass(frozen=True)
class SubjectData:
    """One model's data: training runs joined, test runs joined, and what they came from.

    Attributes
    ----------
    subject : int or str
        The subject as the layout names it (``1`` for A01, ``"01"`` for sub-01).
    train, evaluation : Recording
        Joined runs (``evaluation`` is ``None`` without labelled test data).
    files : tuple of Path
        Files read (fingerprinted).
    label : str
        ``A01``, ``sub-01``, ``BNCI2014_001-01``, or the common stem of explicit files.
    prints : tuple of dict
        Fingerprint entries of every source (file, bytes, sha256).
    contributions : tuple of (str, str, dict)
        Per source: name, ``train`` or ``test``, cues per class (for ``info``).
    """

    subject: int | str
    train: Recording
    evaluation: Recording | None
    files: tuple[Path, ...]
    label: str = ""
    prints: tuple[dict, ...] = ()
    contributions: tuple[tuple[str, str, dict], ...] = ()

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", f"A{int(self.subject):02d}")


@dataclass(frozen=True)
class DataSpec:
    """What the user selected on the command line (``--data``, ``--train``, ``--test``, ``--subject``).

    ``data``: a 2a folder, a BIDS tree, ``gs://bucket/prefix`` or ``moabb:NAME``; ``train`` and
    ``test``: file globs (local or ``gs://``), or BIDS/MOABB session and run selections.
    """

    data: str | None = None
    train: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    subject: str = "all"
    allow_warnings: bool = False

    def describe(self) -> str:
        """The options as the user gave them (for messages)."""
        return " ".join(self.argv())

    def argv(self) -> list[str]:
        """The same selection as command-line options (for printed ``next:`` commands)."""
        out: list[str] = []
        if self.data:
            out += ["--data", str(self.data)]
        for t in self.train:
            out += ["--train", str(t)]
        for t in self.test:
            out += ["--test", str(t)]
        if self.subject != "all" and not (self.train and not self.data):
            out += ["--subject", str(self.subject)]
        if self.allow_warnings:
            out.append("--allow-warnings")
        return out


def _local_patterns(patterns: tuple[str, ...], cache_dir: Path | None) -> list[str]:
    """``gs://bucket/prefix/*.edf`` -> the same glob inside the local copy of ``gs://bucket/prefix``."""
    out = []
    for pattern in patterns:
        if not str(pattern).startswith("gs://"):
            out.append(str(pattern))
            continue
        parts = str(pattern).split("/")
        fixed = [p for p in parts[:next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")),
                                        len(parts) - 1)]]
        folder = "/".join(fixed)
        local = resolve_data(folder, cache_dir)
        out.append(str(local / "/".join(parts[len(fixed):])))
    return out


def plan_data(spec: DataSpec, cache_dir: Path | None = None) -> list[Plan]:
    """Which sources form each model's training and test data (no samples read)."""
    from bcistream.data.bids import is_entity_filter

    if spec.data and str(spec.data).startswith("moabb:"):
        from bcistream.data.moabb_source import plan_moabb

        return plan_moabb(str(spec.data).split(":", 1)[1], spec.subject, list(spec.train), list(spec.test))
    entities = is_entity_filter(spec.train) or is_entity_filter(spec.test)
    if spec.train and not entities:
        base = resolve_data(spec.data, cache_dir) if spec.data else None
        return [plan_explicit(_local_patterns(spec.train, cache_dir), _local_patterns(spec.test, cache_dir),
                              base)]
    if spec.test and not spec.train and not entities:
        raise DataError("--test needs --train (the files to fit on)")
    if not spec.data:
        raise DataError("no data: give --data FOLDER|gs://…|moabb:NAME, or --train FILE… [--test FILE…]")
    folder = resolve_data(spec.data, cache_dir)
    return plan_folder(folder, spec.subject, list(spec.train), list(spec.test))


def data_profile(spec: DataSpec, profile: Profile | str | None) -> Profile:
    """The profile to read with: the given one, or (MOABB without ``--profile``) the dataset's."""
    if profile is None and spec.data and str(spec.data).startswith("moabb:"):
        from bcistream.data.moabb_source import dataset_profile

        return dataset_profile(str(spec.data).split(":", 1)[1])
    return load_profile(profile)


def load_plan(plan: Plan, profile: Profile | str | None = None, *, allow_warnings: bool = False,
              progress: Callable[[str], None] | None = None) -> SubjectData:
    """Read every source of ``plan`` (runs joined as segments) into a `SubjectData`."""
    prof = load_profile(profile)

    def read(sources) -> tuple[list[Recording], list[dict]]:
        recs, prints = [], []
        for src in sources:
            rec = src.load(prof, allow_warnings=allow_warnings)
            recs.append(rec)
            prints.append(source_fingerprint(src, rec))
            if progress is not None:
                progress(f"read {src.path.name if src.path is not None else src.name}")
        return recs, prints

    train_recs, train_prints = read(plan.train)
    test_recs, test_prints = read(plan.test)
    train = join_segments(train_recs, source=plan.train[0].name if len(train_recs) == 1 else
                          f"{plan.label} training runs ({len(train_recs)})")
    evaluation = join_segments(test_recs, source=plan.test[0].name if len(test_recs) == 1 else
                               f"{plan.label} test runs ({len(test_recs)})") if test_recs else None
    if evaluation is not None and any(c.label is None for c in evaluation.cues):
        # Without its labels the test session cannot score anything: treat it as absent.
        evaluation = None
    contributions = tuple((src.name, side, rec.class_counts())
                          for side, srcs, recs in (("train", plan.train, train_recs),
                                                   ("test", plan.test, test_recs))
                          for src, rec in zip(srcs, recs, strict=True))
    extra = [{"file": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in plan.extra_files]
    files = tuple(s.path for s in plan.sources if s.path is not None) + tuple(plan.extra_files)
    subject: int | str = int(plan.subject) if plan.subject.isdigit() and plan.label.startswith("A") else (
        plan.subject)
    return SubjectData(subject=subject, train=train, evaluation=evaluation, files=files, label=plan.label,
                       prints=tuple(train_prints + test_prints + extra), contributions=contributions)


def load_data(spec: DataSpec, profile: Profile | str | None = None, *, cache_dir: Path | None = None,
              n_jobs: int = 1, progress_factory=None) -> list[SubjectData]:
    """Plan and read the selection; ``progress_factory(total)`` gives a per-source ``advance``.

    Parameters
    ----------
    spec : DataSpec
    profile : Profile, str or None
    cache_dir : Path, optional
        Download cache of ``gs://`` data.
    n_jobs : int
        Processes reading plans in parallel.
    progress_factory : callable, optional
        Context manager factory ``(description, total) -> advance`` (the CLI's progress bar).
    """
    plans = plan_data(spec, cache_dir)
    total = sum(len(p.sources) for p in plans)
    bar = progress_factory("loading", total) if progress_factory else contextlib.nullcontext(None)
    with bar as advance:
        if n_jobs <= 1 or len(plans) == 1:
            return [load_plan(p, profile, allow_warnings=spec.allow_warnings, progress=advance)
                    for p in plans]
        from joblib import Parallel, delayed

        out = []
        for data in Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(load_plan)(p, profile, allow_warnings=spec.allow_warnings) for p in plans):
            out.append(data)
            if advance is not None:
                for _ in range(len(data.contributions)):
                    advance(f"loaded {data.label}")
        return out


def load_subject(folder: Path, subject: int, profile: Profile | str | None = None) -> SubjectData:
    """Session T (and E with its labels, when present) of a 2a-layout ``subject`` in ``folder``."""
    return load_plan(plan_folder(Path(folder), str(subject))[0], profile)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Join recordings in time with one NaN sample between them (see `sources.join_segments`)."""
    if not recordings:
        raise DataError("no recordings to pool")
    if len(recordings) == 1:
        rec = recordings[0]
        return Recording(data=rec.data, profile=rec.profile, cues=rec.cues, source=source, notes=rec.notes)
    return join_segments(recordings, source=source)
