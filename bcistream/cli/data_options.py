"""The data options every data command shares, and loading what they select.

``--data`` (a 2a folder, a BIDS tree, ``gs://bucket/prefix``, ``moabb:NAME``), ``--train`` /
``--test`` (files and globs, local or ``gs://``; or BIDS/MOABB sessions and runs such as
``ses-T``), ``--subject``, ``--profile``, ``--allow-warnings``. Several ``--train`` files are runs
of one session, joined as segments.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bcistream.cli.common import progress_bar

DataOpt = Annotated[str | None, typer.Option(
    "--data", envvar="BCISTREAM_DATA_URL",
    help="A BCI IV 2a folder (A0xT/A0xE), a BIDS tree, gs://bucket/prefix or moabb:DATASET.")]
TrainOpt = Annotated[list[str] | None, typer.Option(
    "--train", metavar="FILE",
               help="Training recordings: files or globs (local or gs://), repeatable; runs are "
                    "joined. With a BIDS/MOABB --data: sessions/runs such as ses-T or run-1.")]
TestOpt = Annotated[list[str] | None, typer.Option(
    "--test", metavar="FILE", help="Test recordings, like --train (e.g. --test 'S001R1[02].edf' or ses-E).")]
SubjectOpt = Annotated[str, typer.Option(help="Subject number or label, comma list, or 'all'.")]
ProfileOpt = Annotated[str | None, typer.Option(help="Profile name or TOML file (default: settings; "
                                                     "for moabb: made from the dataset).")]
AllowWarningsOpt = Annotated[bool, typer.Option(
    "--allow-warnings", help="Read files their reader warns about (e.g. truncated); default: refuse.")]


def data_spec(data: str | None, train: list[str] | None, test: list[str] | None, subject: str = "all",
              allow_warnings: bool = False):
    """The selection as a `DataSpec`."""
    from bcistream.training.datasets import DataSpec

    return DataSpec(data=data, train=tuple(train or ()), test=tuple(test or ()), subject=str(subject),
                    allow_warnings=allow_warnings)


def load_selected(spec, profile, s, jobs: int = 1):
    """Read the selection with a progress bar per recording; returns ``list[SubjectData]``."""
    from bcistream.training.datasets import load_data

    return load_data(spec, profile, cache_dir=s.home / "cache" / "gcs", n_jobs=jobs,
                     progress_factory=progress_bar)


def option_args(**options) -> list[str]:
    """``--name value`` pairs of the options the user set (for printed ``next:`` commands)."""
    out: list[str] = []
    for key, value in options.items():
        if value is None or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, list | tuple):
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out
