"""Shared CLI helpers: settings, subject selection, progress bars."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bcistream.errors import BcistreamError
from bcistream.settings import Settings

console = Console()


def settings() -> Settings:
    """Read the settings once, at the edge."""
    return Settings()


def parse_subjects(spec: str, folder: Path | None) -> list[int]:
    """``"3"`` -> [3]; ``"all"`` -> every subject with a training file in ``folder``."""
    from bcistream.data.loader import list_subjects

    if spec == "all":
        if folder is None:
            raise BcistreamError("--subject all needs --data FOLDER")
        return list_subjects(folder)
    try:
        values = [int(part) for part in spec.split(",")]
    except ValueError:
        raise BcistreamError(f"--subject: must be a number, a comma list or 'all', got '{spec}'") from None
    if any(v < 1 or v > 99 for v in values):
        raise BcistreamError(f"--subject: numbers must be 1..99, got '{spec}'")
    return values


@contextmanager
def progress_bar(description: str, total: int):
    """A rich progress bar; yields ``advance()``."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(label: str | None = None) -> None:
            progress.update(task, advance=1, description=label or description)

        yield advance
