"""1 -> 2 engine workers on LSL: how the per-worker load falls when the streams are split.

The same ``n`` LSL streams are decoded by `bcistream.workers.WorkerPool` with one worker, then two
(both allowed on every core). Each worker's CPU time over ``seconds`` of wall time is its load
(1.0 = a full core). One worker at load ``f1`` keeps up with ``n / f1`` streams; two at loads
``f2a, f2b`` with ``n / max(f2a, f2b)``: the scaling ratio is ``f1 / max(f2)`` (2.0 = perfect).
It is a ratio of measured loads, not a probe to failure, and the outlets' own process shares the
cores (on a 2-core machine it takes part of the second core).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(pool, seconds: float) -> list[float]:
    end = time.monotonic() + 6.0  # a full window, and the backlog drained
    while time.monotonic() < end:
        pool.poll(0.05)
    pids = [p.pid for p in pool._procs]
    c0, t0, s0 = [_cpu_s(p) for p in pids], time.monotonic(), pool.stats()["hop_decisions"]
    while time.monotonic() - t0 < seconds:
        pool.poll(0.05)
    took = time.monotonic() - t0
    decisions = pool.stats()["hop_decisions"] - s0
    return [round((_cpu_s(p) - c) / took, 3) for p, c in zip(pids, c0, strict=True)], decisions / took


def pool_keeps_up(pipe, names: list[str], progress: list[Path], workers: int = 2,
                  measure_s: float = 6.0) -> dict:
    """One probe step of ``workers`` engine processes (`bcistream.workers.WorkerPool`, as ``run
    --workers``) on ``names``: passes when the merged hop decisions reach 90 % of 4 per stream and
    second and the pushers kept real time."""
    from bcistream.data.profiles import load_profile
    from bcistream.realtime.engine import EngineConfig
    from bcistream.streamer.endpoints import TransportOptions
    from bcistream.workers import WorkerPool, lsl_specs
    from benchmarks.lsl_probe import CHUNK, SFREQ, _rounds, _say

    common = {"pipeline": pipe, "version": "1", "profile": load_profile(None),
              "config": EngineConfig(hop_s=0.25, triggers=("hop",)),
              "opts": TransportOptions(resolve_timeout=10, skip_backlog=True, lsl_markers=False)}
    _say(f"pool probe {len(names)} streams, {workers} workers: opening")
    t0 = time.monotonic()
    pool = WorkerPool(lsl_specs(names, workers, **common), start_timeout=600)
    opened = time.monotonic() - t0
    try:
        end = time.monotonic() + 8.0  # a full window, and the backlog drained
        while time.monotonic() < end:
            pool.poll(0.05)
        pids = [p.pid for p in pool._procs]
        k0, c0 = [_rounds(p) for p in progress], [_cpu_s(p) for p in pids]
        t1, s0 = time.monotonic(), pool.stats()["hop_decisions"]
        while time.monotonic() - t1 < measure_s:
            pool.poll(0.05)
        took = time.monotonic() - t1
        rate = (pool.stats()["hop_decisions"] - s0) / took
        loads = [round((_cpu_s(p) - c) / took, 3) for p, c in zip(pids, c0, strict=True)]
        pusher = min((_rounds(p) - k) * CHUNK / (SFREQ * took) for p, k in zip(progress, k0, strict=True))
    finally:
        pool._finish([], None, None)
        pool.close()
    return {"streams": len(names), "workers": workers, "decisions_per_s": round(rate, 1),
            "worker_loads": loads, "pusher_vs_realtime": round(pusher, 3), "open_s": round(opened, 1),
            "ok": rate >= 0.9 * 4 * len(names)}


def scaling(pipe, names: list[str], seconds: float = 8.0) -> dict:
    """Worker loads with 1 and 2 workers on the same streams (outlets must be running)."""
    from bcistream.data.profiles import load_profile
    from bcistream.realtime.engine import EngineConfig
    from bcistream.streamer.endpoints import TransportOptions
    from bcistream.workers import WorkerPool, lsl_specs

    common = {"pipeline": pipe, "version": "1", "profile": load_profile(None),
              "config": EngineConfig(hop_s=0.25, triggers=("hop",)),
              "opts": TransportOptions(resolve_timeout=10, skip_backlog=True, lsl_markers=False)}
    out = {"streams": len(names)}
    for n in (1, 2):
        pool = WorkerPool(lsl_specs(names, n, **common))
        try:
            loads, rate = _load(pool, seconds)
        finally:
            pool._finish([], None, None)
            pool.close()
        out[f"loads_{n}"], out[f"decisions_per_s_{n}"] = loads, round(rate, 1)
    out["ratio"] = round(out["loads_1"][0] / max(out["loads_2"]), 3)
    return out
