"""Test helpers: free ports and polling with a deadline (never a fixed sleep)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
               what: str | Callable[[], str] = "condition") -> T:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds.

    ``what`` may be a callable: it is then called at the timeout, so the message shows the state
    when the wait gave up, not when it began.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001  (servers refuse connections while starting)
            last_exc = exc
        time.sleep(interval)
    said = what() if callable(what) else what
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {said} (last error: {last_exc})")
