"""Shared CLI helpers: settings, subject selection, progress bars."""

from __future__ import annotations

import errno
import socket
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


def port_in_use(host: str, port: int) -> bool:
    """Whether a server could not listen on ``host:port`` now (bound, then released at once).

    The socket gets ``SO_REUSEADDR`` as uvicorn's and ``prometheus_client``'s servers do, so a port
    left in TIME_WAIT by a stopped server counts as free, as it is for them. Port 0 (any free port)
    is never in use.

    Parameters
    ----------
    host : str
        The interface the server will bind (a name, IPv4 or IPv6 address).
    port : int
        The TCP port.

    Returns
    -------
    bool
        ``True`` when binding failed with "address in use"; other failures (an unknown host, an
        address of no interface) return ``False`` and are left to the server to report.
    """
    if port == 0:
        return False
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except OSError:
        return False
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(1)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


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
