"""LSL capacity probe of one engine process: search upward until it fails, say where the time goes.

Used by ``bench_streaming`` (the engine process is pinned to one core by ``run_all``). Outlets run
in child processes (``bench_streaming.py lsl-push``) allowed on every core, one child per step of
the search so the outlets already running keep their schedule; each child stamps samples at push
and writes how many rounds it has pushed, so a probe only counts when the pushers kept real time.

A probe passes when the engine stays current (lag p99 < 0.5 s), ingests ≥ 90 % of real time and
makes ≥ 90 % of the expected hop decisions. The search goes up by ``growth`` until a probe fails
(the ceiling lies between the last pass and that failure), the process cannot open more inlets
(its open-files limit: then the last step is exactly that many streams), or the time budget runs
out (then the last pass is a floor, and the row says so). Each probe splits the loop's wall time into stages:
``pull`` (liblsl → buffers), ``convert`` (buffers → chunks: clock correction, re-order, volts),
``engine`` (`Engine.process`), ``publish`` (sink write + flush) and ``idle`` (waiting for data).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.stream_common import _Null

SFREQ = 250.0
CHUNK = 25


def _say(text: str) -> None:
    print(f"[lsl probe] {text}", file=sys.stderr, flush=True)


def _rounds(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _lag(src) -> float:
    import pylsl

    now = pylsl.local_clock()
    lag = [now - st.last_ts for st in src._streams if st.last_ts is not None]
    return float(np.percentile(lag, 99)) if len(lag) == len(src._streams) else float("inf")


def staged_loop(engine, src, sink, seconds: float, stages: dict | None = None) -> dict:
    """`run_loop`'s work (poll, process, write, flush) for ``seconds``, timing each stage."""
    stages = stages if stages is not None else {"engine": 0.0, "publish": 0.0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        batch = src.poll(0.01)
        if not (batch.chunks or batch.markers):
            continue
        t0 = time.perf_counter()
        decisions = engine.process(batch)
        t1 = time.perf_counter()
        if decisions:
            sink.write(decisions)
            sink.flush()
        stages["engine"] += t1 - t0
        stages["publish"] += time.perf_counter() - t1
    return stages


def keeps_up(pipe, names: list[str], progress: list[Path], measure_s: float = 4.0) -> dict:
    """Open the streams, drain the backlog, then check the engine stays current for ``measure_s``."""
    from bcistream.data.profiles import load_profile
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.streamer.lsl_source import LslSource

    t0 = time.monotonic()
    _say(f"probe {len(names)} streams: opening")
    src = LslSource(names, load_profile(None), markers=False, resolve_timeout=10, skip_backlog=True)
    opened = time.monotonic() - t0
    engine = Engine(pipe, "1", EngineConfig(hop_s=0.25, triggers=("hop",)))
    sink = _Null()
    for _ in range(4):  # a full window, and the backlog drained
        staged_loop(engine, src, sink, 3.5)
        if _lag(src) < 0.5:
            break
    _say(f"probe {len(names)} streams: opened in {opened:.1f} s, lag {_lag(src):.2f} s; measuring")
    s0, d0, t1 = src.stats.samples, engine.stats()["hop_decisions"], time.monotonic()
    k0 = [_rounds(p) for p in progress]
    p0, c0, polls0 = src.stats.pull_s, src.stats.convert_s, src.stats.polls
    stages = staged_loop(engine, src, sink, measure_s)
    took = time.monotonic() - t1
    lag = _lag(src)
    samples = src.stats.samples - s0
    decisions = int(engine.stats()["hop_decisions"]) - d0
    pusher = min((_rounds(p) - k) * CHUNK / (SFREQ * took) for p, k in zip(progress, k0, strict=True))
    split = {"pull": src.stats.pull_s - p0, "convert": src.stats.convert_s - c0, **stages}
    split["idle"] = max(took - sum(split.values()), 0.0)
    polls = src.stats.polls - polls0
    src.close()
    del src
    gc.collect()  # the inlets' descriptors are freed now, not when the next step needs them
    rate = samples / (len(names) * SFREQ * took)
    chunks = samples / CHUNK
    return {"streams": len(names), "ingest_vs_realtime": round(rate, 3),
            "pusher_vs_realtime": round(pusher, 3), "lag_p99_s": round(lag, 3),
            "decisions_per_s": round(decisions / took, 1), "open_s": round(opened, 1),
            "stage_share": {k: round(v / took, 3) for k, v in split.items()},
            "stage_us_per_chunk": {k: round(1e6 * v / max(chunks, 1), 2) for k, v in split.items()
                                   if k != "idle"},
            "polls_per_s": round(polls / took),
            "ok": lag < 0.5 and rate >= 0.9 and decisions / took >= 0.9 * 4 * len(names)}


def _threads(procs) -> int:
    """Threads of this process and of the pusher children (Linux /proc; 0 where unreadable)."""
    total = 0
    for pid in ["self", *(str(p.pid) for p in procs)]:
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


def capacity(pipe, start_pusher, first: int = 1000, growth: float = 1.25, top: int = 8000,
             budget_s: float = 480.0, max_threads: int | None = None, probe=None,
             processes: int = 1) -> dict:
    """Search upward until a probe fails or a limit of the process or machine is reached.

    Limits (``limited_by``): ``"cpu"`` (a probe failed: the engine fell behind), ``"open files"``
    (the next step needs more inlets than this process's hard ``RLIMIT_NOFILE`` holds at 12
    descriptors per liblsl inlet: the last step is then that many inlets, a real ceiling of one
    process here), ``"pushers"`` (the simulated amplifiers fell behind: not the engine's limit),
    ``"threads"`` (the next step would need more than ``max_threads``, default 6 000 per core),
    ``"top"`` and ``"time budget"``. ``measured`` is True for the first two.

    ``start_pusher(offset, n, progress_path)`` starts a child pushing ``n`` more outlets named
    ``cap-{offset}`` ... and returns its process (stopped here). ``probe(names, progress)`` runs
    one step (default `keeps_up` in this process); ``processes`` engine processes share the
    streams (the open-files ceiling is per process).
    """
    from bcistream.streamer.lsl_limits import OpenFilesError, max_inlets, open_files

    started = time.monotonic()
    if max_threads is None:
        max_threads = 6000 * (os.cpu_count() or 1)
    # Inlets this process may still open (its own descriptors in use now are not free).
    fd_cap = int(min(processes * (max_inlets() - open_files() / 12), 1e9))
    cap = min(fd_cap, top)
    if probe is None:
        def probe(names, progress):
            return keeps_up(pipe, names, progress)
    folder = Path(tempfile.mkdtemp(prefix="bench-push-"))
    procs, progress, probes, best, limited, n_out = [], [], [], 0, None, 0
    n = min(first, cap)
    try:
        while True:
            if time.monotonic() - started > budget_s:
                probes.append({"streams": n, "skipped": "time budget"})
                limited = "time budget"
                break
            projected = _threads(procs) / max(n_out, 1) * n
            if n_out and projected > max_threads:
                probes.append({"streams": n, "skipped": f"would need ~{projected:.0f} threads "
                                                        f"(limit {max_threads}) on this machine"})
                limited = "threads"
                break
            path = folder / f"rounds-{n_out}"
            procs.append(start_pusher(n_out, n - n_out, path))
            progress.append(path)
            n_out = n
            try:
                res = probe([f"cap-{i}" for i in range(n)], progress)
            except OpenFilesError as exc:
                probes.append({"streams": n, "skipped": str(exc)})
                limited = "open files"
                break
            probes.append(res)
            _say(f"result {res}")
            if res["pusher_vs_realtime"] < 0.9:
                res["ok"], res["note"] = None, "the pushers fell behind: not the engine's limit"
                limited = "pushers"
                break
            if not res["ok"]:
                limited = "cpu"
                break
            best = n
            if n >= cap:
                limited = "open files" if cap == fd_cap else "top"
                probes.append({"streams": int(round(n * growth)), "skipped": (
                    f"{processes} process(es) may hold {fd_cap} liblsl inlets (hard open-files "
                    f"limit {_hard_limit()}, 12 per inlet)" if cap == fd_cap else f"top={top}")})
                break
            n = min(max(n + 1, int(round(n * growth / 250) * 250)), cap)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except Exception:  # noqa: BLE001 - a stuck pusher is killed
                proc.kill()
    failed = next((p["streams"] for p in probes if p.get("ok") is False), None)
    return {"ceiling": best, "failed_at": failed, "limited_by": limited,
            "measured": limited in ("cpu", "open files"), "probes": probes,
            "seconds": round(time.monotonic() - started, 1)}


def _hard_limit() -> str:
    from bcistream.streamer.lsl_limits import files_limit

    lim = files_limit()
    return "none" if lim is None else f"{lim[1]:.0f}"
