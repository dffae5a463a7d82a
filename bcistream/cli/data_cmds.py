"""Data commands: ``synth``, ``info``, ``evaluate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, parse_subjects, progress_bar


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    subjects: Annotated[int, typer.Option(min=1, max=99, help="Number of subjects.")] = 9,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="fif or edf.")] = "fif",
) -> None:
    """Write synthetic motor-imagery recordings in the BCI IV 2a layout (T, E and E labels)."""
    from bcistream.data.synth import write_dataset

    with progress_bar("synthesizing", total=subjects * 2) as advance:
        paths = write_dataset(out, subjects=subjects, seed=seed, fmt=fmt, progress=advance)
    console.print(f"wrote {len(paths)} files to {out}")


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A recording (GDF/EDF/BDF/FIF).")],
    profile: Annotated[str | None, typer.Option(help="Profile name or TOML file.")] = None,
) -> None:
    """Print channels, rate, duration, events per class and whether the profile matches."""
    from bcistream.data.loader import load_recording, read_raw
    from bcistream.data.profiles import load_profile
    from bcistream.errors import DataError

    prof = load_profile(profile)
    raw = read_raw(file)
    console.print(f"[bold]{file}[/bold]")
    console.print(f"channels ({len(raw.ch_names)}): {', '.join(raw.ch_names)}")
    console.print(f"rate: {raw.info['sfreq']:g} Hz   duration: {raw.n_times / raw.info['sfreq']:.1f} s"
                  f"   samples: {raw.n_times}")
    descs, counts = np.unique([str(d) for d in raw.annotations.description], return_counts=True)
    table = Table("annotation", "count", "meaning")
    for d, c in zip(descs, counts, strict=True):
        meaning = prof.classes.get(d, "")
        if d == prof.unknown_cue:
            meaning = "cue, unknown class"
        elif d == prof.reject_marker:
            meaning = "rejected trial"
        table.add_row(d, str(c), meaning)
    console.print(table)
    try:
        rec = load_recording(file, prof)
    except DataError as exc:
        console.print(f"profile '{prof.name}': [red]does not match[/red] — {exc}")
        raise typer.Exit(1) from None
    counts_by_class = rec.class_counts()
    rejected = sum(c.rejected for c in rec.cues)
    console.print(f"profile '{prof.name}': [green]matches[/green]; cues per class: {counts_by_class}"
                  f"; rejected: {rejected}; missing samples: {rec.n_missing}")


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Folder with A0xT / A0xE recordings.")],
    subject: Annotated[str, typer.Option(help="Subject number, comma list, or 'all'.")] = "all",
    profile: Annotated[str | None, typer.Option(help="Profile name or TOML file.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="CV folds on session T.")] = 5,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Pipeline parameter key=value, e.g. decoder=ts-lr.")] = None,
) -> None:
    """Per subject: T->E accuracy and kappa, CV on T; then the mean."""
    from bcistream.data.loader import find_subject_files, load_recording
    from bcistream.training.evaluation import evaluate_subject
    from bcistream.training.params import parse_overrides, pipeline_params

    params = pipeline_params(None, parse_overrides(set_))
    subjects = parse_subjects(subject, data)
    results = []
    with progress_bar("evaluating", total=len(subjects)) as advance:
        for s in subjects:
            files = find_subject_files(data, s)
            train = load_recording(files["T"], profile)
            ev = load_recording(files["E"], profile) if "E" in files else None
            results.append(evaluate_subject(train, ev, params=params, folds=folds, subject=f"A{s:02d}"))
            advance(f"evaluated A{s:02d}")
    table = Table("subject", "T→E accuracy", "kappa", "CV on T (mean ± sd)", "trials T/E",
                  title=f"Evaluation of {params['decoder']} (train on T, test on E)")
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
    console.print(table)
