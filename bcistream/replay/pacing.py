"""Pacing on the monotonic clock: chunk k is due at a fixed offset from the start (no drift)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Releases chunk ``k`` at ``start + due(k)``; the schedule never accumulates sleep errors.

    Sleeps until ~1.5 ms before the deadline, then spins, which keeps the release jitter well
    under a millisecond at a few percent of a core.

    Parameters
    ----------
    period : float or None
        Seconds between chunks (``None``: as fast as possible).
    clock : callable
        Monotonic clock (injectable for tests).
    spin_s : float
        How long before the deadline to stop sleeping and spin.
    """

    def __init__(self, period: float | None, clock: Callable[[], float] = time.monotonic,
                 spin_s: float = 0.0015, sleep: Callable[[float], None] = time.sleep) -> None:
        self.period = period
        self.clock = clock
        self.sleep = sleep
        self.spin_s = spin_s
        self.start = clock()
        self.lateness: list[float] = []

    def due(self, k: int) -> float:
        """Monotonic time at which chunk ``k`` (0-based) is released."""
        return self.start if self.period is None else self.start + (k + 1) * self.period

    def wait(self, k: int, stop: Callable[[], bool] | None = None) -> float:
        """Block until chunk ``k`` is due; return its lateness in seconds (>= 0 unless stopped)."""
        if self.period is None:
            return 0.0
        target = self.due(k)
        while True:
            left = target - self.clock()
            if left <= 0:
                break
            if stop is not None and stop():
                return left
            if left > self.spin_s:
                self.sleep(min(left - self.spin_s, 0.05))
        late = self.clock() - target
        self.lateness.append(late)
        return late
