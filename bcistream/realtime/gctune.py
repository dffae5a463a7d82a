"""Garbage-collector settings for a streaming worker (opt-in; used by `run_loop` and the benchmarks).

The engine allocates many short-lived objects per second (chunks, due windows, decision records)
that reference counting frees; CPython's cyclic collector still runs every 700 allocations and
regularly re-scans every long-lived object (the model, the streams' state). Freezing what exists
at start-up and collecting the young generation less often cut the engine's CPU by ~30 % in
`benchmarks/bench_engine.py`, at the price of cyclic garbage living a little longer.

The price of the high threshold is the pause: a young collection of ~50 000 objects allocated
over seconds took 12-72 ms in a Kafka engine loop (cache misses), and decisions due meanwhile
wait (they were the Kafka p99's tail). A loop that is idle collects the young generation itself
(`collect_when_idle`) while it is still small, so the automatic collection is only reached under
sustained load, where throughput matters more than one pause.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["IDLE_COLLECT", "collect_when_idle", "streaming_gc"]

#: Young-generation size from which an idle loop collects it (~0.1-0.3 ms at this size).
IDLE_COLLECT = 1000


@contextmanager
def streaming_gc(threshold: int | None = 50000) -> Iterator[None]:
    """Within the block: freeze the existing objects and raise the young-generation threshold.

    Parameters
    ----------
    threshold : int or None
        Allocations between young-generation collections; ``None`` leaves the collector alone.
        The previous settings are restored (and the frozen objects released) on exit.
    """
    if threshold is None:
        yield
        return
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(int(threshold), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def collect_when_idle(min_objects: int = IDLE_COLLECT) -> bool:
    """Collect the young generation if it holds at least ``min_objects``; True if it did.

    Call it where waiting costs nothing (a poll returned no data): the collection then happens
    between decisions instead of in the middle of one. Does nothing while the collector is off.
    """
    if gc.isenabled() and gc.get_count()[0] >= min_objects:
        gc.collect(0)
        return True
    return False
