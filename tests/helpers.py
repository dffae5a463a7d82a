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


class CliProcess:
    """``python -m bcistream ARGS`` as a child process whose output (stdout and stderr) is collected.

    A context manager: the process is killed at the exit if it still runs. ``session=True`` puts it
    in a process group of its own, as a terminal's job, so `interrupt` reaches its children too.
    """

    def __init__(self, args: list[str], home: str, session: bool = False) -> None:
        import os
        import subprocess
        import sys
        import threading

        env = {**os.environ, "BCISTREAM_HOME": home, "PYTHONUNBUFFERED": "1"}
        self.session = session
        self.proc = subprocess.Popen([sys.executable, "-m", "bcistream", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env,
                                     start_new_session=session)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def out(self) -> str:
        """Everything printed so far."""
        return "".join(self.lines)

    def wait_for(self, check: Callable[[], object], timeout: float, what: str) -> None:
        """Wait until ``check()`` is true; fail if the process ends first."""
        wait_until(lambda: check() or self.proc.poll() is not None, timeout=timeout, what=what)
        assert self.proc.poll() is None, f"ended before {what}:\n{self.out[-3000:]}"

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C (SIGINT; to the whole group with ``session``); wait for the exit code."""
        import os
        import signal

        if self.session:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def __enter__(self) -> CliProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            if self.session:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                self.proc.kill()
            self.proc.wait()
