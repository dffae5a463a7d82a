"""Open-file budget of a process that holds many LSL inlets.

liblsl (1.16-1.18) keeps 12 file descriptors per opened inlet: three asio event loops of three
descriptors each (epoll, eventfd, timerfd) and three sockets (measured by
``tests/test_lsl_limits.py`` against the installed liblsl). The usual soft limit of open files is
1 024, so without this module an engine stopped at ~80 streams, and at the container hard limit of
20 000 at ~1 650, each time with liblsl's "Too many open files" retried in thousands of threads and
a pylsl ``TimeoutError`` a minute later. Here the soft limit is raised toward the hard limit before
the inlets open (as servers such as nginx or Ray do at start-up), and a stream count that cannot
fit is refused up front with the fix named.
"""

from __future__ import annotations

import logging
import math
import os

from bcistream.errors import BcistreamError

__all__ = ["FILES_PER_INLET", "OpenFilesError", "ensure_open_files", "files_limit",
           "max_inlets", "open_files"]

log = logging.getLogger(__name__)

FILES_PER_INLET = 12
# Descriptors a process needs beside its inlets and what it has open already (sinks, metrics
# server, reconnects, logs).
RESERVE = 64


class OpenFilesError(BcistreamError):
    """More LSL inlets than this process may hold open (``ulimit -n``)."""


def files_limit() -> tuple[float, float] | None:
    """``(soft, hard)`` limit of open files of this process (``inf`` = unlimited); None off POSIX."""
    try:
        import resource
    except ImportError:  # Windows: no per-process descriptor limit of this kind
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    return (math.inf if soft == inf else float(soft), math.inf if hard == inf else float(hard))


def open_files() -> int:
    """Descriptors this process has open now (Linux/macOS; 64 where it cannot be counted)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder))
        except OSError:
            continue
    return 64


def max_inlets(limit: float | None = None, in_use: int = 0) -> float:
    """Inlets one process can hold under ``limit`` open files with ``in_use`` already open.

    ``limit`` defaults to this process's hard limit (then ``in_use`` to what it has open now).
    """
    if limit is None:
        lim = files_limit()
        limit = math.inf if lim is None else lim[1]
        in_use = open_files()
    if math.isinf(limit):
        return math.inf
    return max(int((limit - in_use - RESERVE) // FILES_PER_INLET), 0)


def ensure_open_files(n_inlets: int) -> float:
    """Make room for ``n_inlets`` more LSL inlets in this process; return the soft limit now in force.

    The soft ``RLIMIT_NOFILE`` is raised (never lowered) to twice what is needed, at most to the
    hard limit, so liblsl's reconnects have room too.

    Parameters
    ----------
    n_inlets : int
        Inlets about to be opened (EEG and marker streams).

    Raises
    ------
    OpenFilesError
        The hard limit is too low for ``n_inlets``: the message gives the numbers and the fixes
        (raise ``ulimit -n``, or split the streams over worker processes).
    """
    lim = files_limit()
    if lim is None or n_inlets <= 0:
        return math.inf if lim is None else lim[0]
    soft, hard = lim
    needed = open_files() + n_inlets * FILES_PER_INLET + RESERVE
    if needed <= soft:
        return soft
    if needed > hard:
        in_use = open_files()
        per = int(max_inlets(hard, in_use))
        fix = (f"one process holds up to {per:,} inlets here: split the streams over worker "
               f"processes (workers=N; CLI --workers N) or raise the hard limit" if per else
               "not one inlet fits: raise the hard limit")
        raise OpenFilesError(
            f"{n_inlets} LSL inlets need ~{needed:,} open files (liblsl keeps {FILES_PER_INLET} per "
            f"inlet; {in_use} already open) but this process may open at most {hard:,.0f} "
            f"(`ulimit -Hn`); {fix}")
    import resource

    target = min(hard, 2 * needed)
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (int(target), resource.RLIM_INFINITY if math.isinf(hard) else int(hard)))
    log.info("raised the open-files limit from %.0f to %.0f for %d LSL inlets", soft, target, n_inlets)
    return target
