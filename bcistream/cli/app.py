"""The typer application object every command module registers on."""

from __future__ import annotations

import inspect
import re
from typing import Annotated, get_type_hints

import typer
import typer._click._textwrap


def _argument_type(self, ctx):  # noqa: ANN001, ANN202  (typer's own signature)
    # typer shows an option's metavar alone but always adds the type to an argument's
    # (``FILE <list[Path]>``); an argument with a metavar is shown like an option: its metavar.
    return None if self.metavar is not None else self.display_type(ctx)


typer.core.TyperArgument.display_type_rich = _argument_type


def _argument_name(self) -> str:
    """An argument's name in help: its metavar, else its name in capitals."""
    # click's convention, which the one-line errors follow too (``missing argument FILE``).
    return self.metavar if self.metavar is not None else (self.name or "").upper()


def _argument_usage(self) -> str:
    """An argument in the usage line: ``FILE`` (required), ``[FILE]`` (optional), ``...`` if repeated."""
    # typer >= 0.29 writes a required argument as ``{file}`` in the usage line, which reads as an
    # unfilled format placeholder; click writes ``FILE`` (required) and ``[FILE]`` (optional).
    name = _argument_name(self)
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _argument_help_name(self) -> str:
    """The name in the Arguments section, as in the usage line (``FILE``, ``FILE...``)."""
    return _argument_name(self) + ("..." if self.metavar is None and self.nargs != 1 else "")


typer.core.TyperArgument._usage_display_name = _argument_usage
typer.core.TyperArgument._rich_display_name = _argument_help_name


class _WholeWords(typer._click._textwrap.TextWrapper):
    """The help wrapper without breaks after hyphens: ``NAME-LABEL@champion`` stays whole."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 (textwrap's signature)
        kwargs.setdefault("break_on_hyphens", False)
        super().__init__(*args, **kwargs)


# typer renders help with its own copy of click, whose wrap_text imports TextWrapper from here
# at every call.
typer._click._textwrap.TextWrapper = _WholeWords

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


def _plain(text: str) -> str:
    """Help text without reStructuredText quoting: ````--on k8s```` and ```train``` read as plain text."""
    return re.sub(r"`{1,2}([^`]+?)`{1,2}", r"\1", text)


def tidy_help(typer_app: typer.Typer | None = None) -> None:
    """Make every command's help plain text (docstrings are written for the API docs too).

    Walks the registered commands and groups once, after every command module registered: the
    command help (its docstring unless given) and every option's and argument's help.
    """
    typer_app = app if typer_app is None else typer_app
    for info in typer_app.registered_commands:
        doc = info.help if isinstance(info.help, str) else inspect.getdoc(info.callback)
        if doc:
            info.help = _plain(doc)
        hints = get_type_hints(info.callback, include_extras=True)  # annotations are strings here
        for name, param in inspect.signature(info.callback).parameters.items():
            for meta in (*getattr(hints.get(name), "__metadata__", ()), param.default):
                if isinstance(getattr(meta, "help", None), str):
                    meta.help = _plain(meta.help)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)
