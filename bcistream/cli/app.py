"""The typer application object every command module registers on."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="bcistream",
    help="Real-time motor-imagery EEG decoding with online retraining.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: rich's option table cuts long option names at 80 columns
    # (``--dead-letter-…``); click wraps help text and never cuts a name.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from bcistream import __version__

        typer.echo(f"bcistream {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Real-time motor-imagery EEG decoding with online retraining."""
