"""Data commands: ``synth``, ``info``, ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, progress_bar
from bcistream.cli.data_options import (
    AllowWarningsOpt,
    DataOpt,
    ProfileOpt,
    SubjectOpt,
    TestOpt,
    TrainOpt,
    data_spec,
    load_selected,
)
from bcistream.cli.tables import print_table
from bcistream.errors import BcistreamError


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    subjects: Annotated[int, typer.Option(min=1, max=99, help="Number of subjects.")] = 9,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="fif or edf.")] = "fif",
) -> None:
    """Write synthetic motor-imagery recordings in the BCI IV 2a layout (T, E and E labels)."""
    from bcistream.data.synth import write_dataset

    if fmt.lower() not in ("fif", "edf"):
        raise BcistreamError(f"--format: must be 'fif' or 'edf', got '{fmt}'")
    with progress_bar("synthesizing", total=subjects * 2) as advance:
        paths = write_dataset(out, subjects=subjects, seed=seed, fmt=fmt, progress=advance)
    console.print(f"wrote {len(paths)} files to {out}")


def _resolve_profile(spec, profile: str | None, s):
    from bcistream.training.datasets import data_profile

    moabb = bool(spec.data and str(spec.data).startswith("moabb:"))
    return data_profile(spec, profile if (profile or moabb) else s.profile)


def _file_header(file: Path, prof, allow_warnings: bool) -> None:
    """Channels, rate, duration, annotations and reader warnings of one file."""
    from bcistream.data.loader import file_channel_names, read_raw_notes
    from bcistream.errors import DataError

    if file.suffix.lower() == ".xdf":
        from bcistream.data.xdf import read_xdf

        content = read_xdf(file, allow_warnings=True)
        raw, notes = content.raw, content.notes
    else:
        try:
            raw, notes = read_raw_notes(file, allow_warnings=True)
        except DataError as exc:
            if "mixes sampling rates" not in str(exc):
                raise
            raw, notes = read_raw_notes(file, channels=file_channel_names(prof), allow_warnings=True)
    console.print(f"[bold]{file}[/bold]")
    console.print(f"channels ({len(raw.ch_names)}): {', '.join(raw.ch_names)}")
    console.print(f"rate: {raw.info['sfreq']:g} Hz   duration: {raw.n_times / raw.info['sfreq']:.1f} s"
                  f"   samples: {raw.n_times}")
    for note in notes:
        colour = "yellow" if allow_warnings else "red"
        console.print(f"[{colour}]reader warning:[/{colour}] {note}", soft_wrap=True)
    markers = prof.marker_map
    descs, counts = np.unique([str(d) for d in raw.annotations.description], return_counts=True)
    table = Table("annotation", "count", "meaning")
    for d, c in zip(descs, counts, strict=True):
        meaning = markers.map(d)
        text = {"class": meaning.label, "unknown-cue": "cue, unknown class",
                "reject": "rejected trial"}.get(meaning.kind, "")
        table.add_row(d, str(c), text or "")
    print_table(console, table)


@app.command()
def info(
    files: Annotated[list[Path] | None, typer.Argument(metavar="FILE",
                                                       help="Recordings (GDF/EDF/BDF/FIF/XDF).")] = None,
    data: DataOpt = None,
    train: TrainOpt = None,
    test: TestOpt = None,
    subject: SubjectOpt = "all",
    profile: ProfileOpt = None,
    allow_warnings: AllowWarningsOpt = False,
) -> None:
    """Channels, rate, duration, events per class, reader warnings, whether the profile matches,
    and what each file contributes to training and test data."""
    from bcistream.cli.common import settings
    from bcistream.errors import DataError
    from bcistream.training.datasets import load_plan, plan_data

    s = settings()
    if files:
        spec = data_spec(None, [str(f) for f in files], None, "all", allow_warnings)
    else:
        spec = data_spec(data, train, test, subject, allow_warnings)
    prof = _resolve_profile(spec, profile, s)
    plans = plan_data(spec, s.home / "cache" / "gcs")
    for plan in plans:
        for src in plan.sources:
            if src.path is not None and src.kind == "file":
                _file_header(src.path, prof, allow_warnings)
    table = Table("file", "role", "cues per class", title=f"What each file contributes "
                  f"(profile '{prof.name}')")
    failed, summaries = [], []
    with progress_bar("checking", total=sum(len(p.sources) for p in plans)) as advance:
        for plan in plans:
            try:
                loaded = load_plan(plan, prof, allow_warnings=allow_warnings, progress=advance)
            except DataError as exc:
                failed.append(str(exc))
                continue
            for name, side, counts in loaded.contributions:
                role = f"{plan.label} {'training' if side == 'train' else 'test'}"
                table.add_row(Path(name).name, role,
                              ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none")  # profile order
            rec = loaded.train
            rejected = sum(c.rejected for c in rec.cues)
            summaries.append(f"{plan.label}: training data from {len(plan.train)} file(s): cues per class "
                             f"{rec.class_counts()}; rejected: {rejected}; missing samples: {rec.n_missing}"
                             + (f"; test data from {len(plan.test)} file(s)"
                                + ("" if loaded.evaluation is not None else " (unlabelled: not scored)")
                                if plan.test else "; no test data")
                             + ("; allowed reader warnings: " + "; ".join(rec.notes) if rec.notes else ""))
            if files and len(plans) == 1 and len(plan.sources) == 1:
                console.print(f"profile '{prof.name}': [green]matches[/green]; cues per class: "
                              f"{rec.class_counts()}; rejected: {rejected}; missing samples: {rec.n_missing}")
    print_table(console, table)
    for line in summaries:
        console.print(line, soft_wrap=True)
    for reason in failed[1:]:
        console.print(f"profile '{prof.name}': [red]does not match[/red] — {reason}", soft_wrap=True)
    if failed:  # bad input: one error line, exit 2 (as every other command)
        more = f" (and {len(failed) - 1} more selection(s), listed above)" if len(failed) > 1 else ""
        raise BcistreamError(f"profile '{prof.name}' does not match — {failed[0]}{more}")


def _params_for(set_: list[str] | None, prof) -> dict:
    from bcistream.training.params import parse_overrides, pipeline_params, resolve_params

    return resolve_params(pipeline_params(None, parse_overrides(set_)), prof)


@app.command()
def evaluate(
    data: DataOpt = None,
    train: TrainOpt = None,
    test: TestOpt = None,
    subject: SubjectOpt = "all",
    profile: ProfileOpt = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Pipeline parameter key=value, e.g. decoder=ts-lr.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="CV folds on the training data.")] = 5,
    allow_warnings: AllowWarningsOpt = False,
    jobs: Annotated[int, typer.Option(min=1, help="Processes loading subjects in parallel.")] = 1,
) -> None:
    """Per subject (or file group): train→test accuracy and kappa, CV on the training data; then the mean."""
    from bcistream.cli.common import settings
    from bcistream.training.evaluation import evaluate_subject

    s = settings()
    spec = data_spec(data, train, test, subject, allow_warnings)
    prof = _resolve_profile(spec, profile, s)
    params = _params_for(set_, prof)
    loaded = load_selected(spec, prof, s, jobs)
    results = []
    with progress_bar("evaluating", total=len(loaded)) as advance:
        for d in loaded:
            results.append(evaluate_subject(d.train, d.evaluation, params=dict(params), folds=folds,
                                            subject=d.label))
            advance(f"evaluated {d.label}")
    table = Table("subject", "train→test accuracy", "kappa", "CV on train (mean ± sd)", "trials train/test",
                  title=f"Evaluation of {params['decoder']} (fit on the training data, score on the "
                        "test data)")
    for r in results:
        acc = "—" if r.accuracy is None else f"{r.accuracy:.3f}"
        kap = "—" if r.kappa is None else f"{r.kappa:.3f}"
        table.add_row(r.subject, acc, kap, f"{r.cv_mean:.3f} ± {r.cv_std:.3f}",
                      f"{r.n_train}/{r.n_test}")
    accs = [r.accuracy for r in results if r.accuracy is not None]
    kaps = [r.kappa for r in results if r.kappa is not None]
    table.add_section()
    table.add_row("mean", f"{np.mean(accs):.3f}" if accs else "—",
                  f"{np.mean(kaps):.3f}" if kaps else "—",
                  f"{np.mean([r.cv_mean for r in results]):.3f}", "")
    print_table(console, table)
