"""The typer application object every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bcistream",
    help="Real-time motor-imagery EEG decoding with online retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
