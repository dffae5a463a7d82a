"""Client-library log lines at the terminal: one line each, and a repeat said once per interval.

While a Kafka broker is away, kafka-python logs the same three ERROR lines at every reconnect
attempt (several a second), some with a traceback; a user saw a screen of them. Our own events
(``stall``, ``markers_behind``, ``unread``, …) say what it means for the decoding; the client's
lines stay useful as the cause, so they are kept — once per ``interval_s`` per kind of line, without
tracebacks, and the next one after a quiet spell says how many were held back.
``BCISTREAM_LOG_LEVEL=DEBUG`` shows everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RepeatFilter"]


class RepeatFilter(logging.Filter):
    """Handler filter: records of ``prefixes`` loggers pass once per ``interval_s`` per kind.

    A kind is (logger name, level): during an outage each client module repeats one or two
    messages with other arguments (``"Connection failed: %s"``). Tracebacks of those records are
    dropped (one line each).

    Parameters
    ----------
    prefixes : tuple of str
        Logger names whose records are filtered (``"kafka"`` covers ``kafka.net.manager``, …).
    interval_s : float
        Seconds during which a repeat of a kind that just passed is held back (and counted).
    clock : callable
        Monotonic clock (injectable for tests).
    """

    def __init__(self, prefixes: tuple[str, ...] = ("kafka",), interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)
        self.interval_s = float(interval_s)
        self._clock = clock
        self._last: dict[tuple[str, int], float] = {}
        self._held: dict[tuple[str, int], int] = {}

    def _ours(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self.prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._ours(record.name):
            return True
        record.exc_info = None  # a client's traceback is not for the terminal (DEBUG keeps it)
        record.exc_text = None
        record.stack_info = None
        key = (record.name, record.levelno)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it held back)"
            record.args = None
        return True


def install(level: str) -> None:
    """Add a `RepeatFilter` for kafka-python to the root logger's handlers (not at DEBUG)."""
    if level.upper() == "DEBUG":
        return
    flt = RepeatFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(flt)
