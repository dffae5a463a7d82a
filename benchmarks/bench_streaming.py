"""Streaming benchmarks: LSL and Kafka end-to-end latency, LSL streams per engine, Kafka ingest, pacing.

Run through ``benchmarks/run_all.py`` (the engine process is pinned to one core). Outlets, the
producer and the tansu broker are the outside world: they run in child processes allowed on every
core, so the engine's core only does the engine's work (inlets/consumer, decoding, publishing).
LSL stays on loopback with a config whose ``PortRange`` lets one host offer thousands of outlets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.kafka_bench import kafka_push, kafka_rows  # noqa: E402 (sys.path above)
from benchmarks.stream_common import (  # noqa: E402
    N_CH,
    SFREQ,
    _all_cores,
    _child,
    _loop,
    _lsl_env,
    _row,
    _stop,
    _Timed,
)


# ---------------------------------------------------------------------------------------- LSL
def lsl_latency(pipe, seconds: float = 25.0) -> dict:
    """One stream pushed sample by sample, each stamped at push: latency = publish - stamp."""
    import pylsl

    from bcistream.data.profiles import load_profile
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.streamer.lsl_sink import LslDecisionSink
    from bcistream.streamer.lsl_source import LslSource

    proc = _child("lsl-push", "--n", "1", "--prefix", "lat", "--chunk", "1", "--wait")
    try:
        src = LslSource(["lat-0"], load_profile(None), markers=False, resolve_timeout=10)
        engine = Engine(pipe, "1", EngineConfig(hop_s=0.1, triggers=("hop",)))
        sink = _Timed(LslDecisionSink("bench-decisions"), pylsl.local_clock)
        _loop(engine, src, [sink], seconds)
        src.close()
    finally:
        _stop(proc)
    lat = np.array(sink.lat[5:])
    return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "n": len(lat),
            "split_ms": sink.split()}


def lsl_capacity(pipe, budget_s: float = 480.0, first: int = 1000, growth: float = 1.25,
                 top: int = 8000) -> dict:
    """Streams one pinned engine keeps up with, searched upward to failure (`benchmarks.lsl_probe`)."""
    from benchmarks.lsl_probe import capacity

    def start(offset: int, n: int, progress: Path):
        return _child("lsl-push", "--n", str(n), "--offset", str(offset), "--prefix", "cap",
                      "--chunk", "25", "--progress", str(progress), "--schedule")

    return capacity(pipe, start, first=first, growth=growth, top=top, budget_s=budget_s)


def lsl_machine_capacity(pipe, workers: int = 2, budget_s: float = 480.0, first: int = 1000,
                         growth: float = 1.25, top: int = 8000) -> dict:
    """Streams the machine decodes with ``workers`` engine processes (as ``run --workers``), the
    outlets on the same cores: `benchmarks.lsl_probe.capacity` with `lsl_scaling.pool_keeps_up`."""
    from benchmarks.lsl_probe import capacity
    from benchmarks.lsl_scaling import pool_keeps_up

    def start(offset: int, n: int, progress: Path):
        return _child("lsl-push", "--n", str(n), "--offset", str(offset), "--prefix", "cap",
                      "--chunk", "25", "--progress", str(progress), "--schedule")

    def probe(names, progress):
        return pool_keeps_up(pipe, names, progress, workers)

    with _all_cores():
        return capacity(pipe, start, first=first, growth=growth, top=top, budget_s=budget_s,
                        probe=probe, processes=workers)


def lsl_workers_scaling(pipe, n: int = 500, seconds: float = 8.0) -> dict:
    """`benchmarks.lsl_scaling`: outlets in a child, workers on every core."""
    from benchmarks.lsl_scaling import scaling

    progress = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "rounds"
    proc = _child("lsl-push", "--n", str(n), "--prefix", "scale", "--chunk", "25", "--progress",
                  str(progress))
    try:
        with _all_cores():
            return scaling(pipe, [f"scale-{i}" for i in range(n)], seconds)
    finally:
        _stop(proc)


def lsl_push(n: int, prefix: str, chunk: int, wait: bool, progress: str | None = None,
             offset: int = 0, schedule: bool = False) -> None:
    """Child: ``n`` outlets (``prefix-offset`` ...) pushing synthetic EEG on a real-time schedule."""
    _lsl_env()
    import pylsl

    outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(f"{prefix}-{i}", "EEG", N_CH, SFREQ, pylsl.cf_float32,
                                                   f"{prefix}-{i}"), chunk_size=chunk)
               for i in range(offset, offset + n)]
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((int(SFREQ) * 4, N_CH)) * 1e-5).astype(np.float32)
    print("ready", flush=True)
    if wait:
        outlets[0].wait_for_consumers(30)
    period = chunk / SFREQ
    start = time.monotonic()
    fd = os.open(progress, os.O_RDWR | os.O_CREAT) if progress else None
    k = 0
    lsl_start = pylsl.local_clock() - time.monotonic() + start
    try:
        while True:
            due = start + (k + 1) * period
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
            a = (k * chunk) % (block.shape[0] - chunk)
            data = block[a:a + chunk]
            for out in outlets:
                # Stamped at push, as amplifier bridges do; or (schedule) on the sampling clock, as
                # an amplifier's own clock does: the capacity probes use that, because on a
                # saturated 2-core machine the pusher's own lateness (> 0.1 s) reads as gaps.
                out.push_chunk(data, lsl_start + (k + 1) * period if schedule else pylsl.local_clock(),
                               True)
            k += 1
            if fd is not None:
                os.pwrite(fd, str(k).ljust(12).encode(), 0)
    except KeyboardInterrupt:
        pass


def lsl_reconnect(rounds: int = 3) -> dict:
    """Seconds from an outlet's return (same source id) to its samples in the source again.

    The outlet runs in this process and pushes every 10 ms; the inlet (``recover=True``) finds
    it again by itself. Median and max of ``rounds`` outages.
    """
    import pylsl

    from bcistream.data.profiles import load_profile
    from bcistream.streamer.lsl_source import LslSource

    name = f"reconnect-{os.getpid()}"

    def outlet():
        return pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", N_CH, SFREQ, pylsl.cf_float32, name))

    block = np.zeros((3, N_CH), np.float32)
    out = outlet()
    src = LslSource([name], load_profile(None), markers=False, resolve_timeout=10)
    took = []
    try:
        for _ in range(rounds):
            t0 = time.monotonic()
            while not src.poll(0.01).chunks and time.monotonic() - t0 < 10:
                out.push_chunk(block, pylsl.local_clock(), True)
            del out
            end = time.monotonic() + 0.5  # the stream is away for half a second
            while time.monotonic() < end:
                src.poll(0.01)
            out = outlet()
            back = time.monotonic()
            got = False
            while not got and time.monotonic() - back < 30:
                out.push_chunk(block, pylsl.local_clock(), True)
                got = bool(src.poll(0.01).chunks)
            took.append(time.monotonic() - back if got else float("inf"))
    finally:
        src.close()
    return {"median_s": float(np.median(took)), "max_s": float(np.max(took)), "rounds": took}


# ---------------------------------------------------------------------------------------- replay
def replay_jitter(seconds: float = 10.0) -> dict:
    """Pacing lateness of a 1x replay into a real LSL outlet (10-sample chunks, 25 releases/s)."""
    from bcistream.data.profiles import load_profile
    from bcistream.data.recording import Recording
    from bcistream.replay import LslTarget, replay

    prof = load_profile(None)
    rng = np.random.default_rng(2)
    rec = Recording(rng.standard_normal((prof.n_channels, int(seconds * SFREQ))) * 1e-5, prof, (), "noise")
    target = LslTarget("bench-replay", rec, chunk=10)
    stats = replay(rec, target, speed=1.0, chunk=10)
    target.close()
    late = np.array(stats.lateness) * 1e3
    return {"p50": float(np.percentile(late, 50)), "p99": float(np.percentile(late, 99)),
            "max": float(late.max()), "n": len(late)}


# ---------------------------------------------------------------------------------------- entry
def run() -> list[dict]:
    """Summary rows (see benchmarks/run_all.py)."""
    _lsl_env()
    from benchmarks.bench_engine import fitted_pipeline

    started = time.monotonic()
    pipe, _ = fitted_pipeline(n_trials_per_class=12)
    rows = []
    jit = replay_jitter()
    rows.append(_row("replay_jitter_p99_ms", "replay at 1x: chunk release lateness p99 (monotonic "
                     "schedule, 10-sample chunks into an LSL outlet)", round(jit["p99"], 3), "ms", 1.0,
                     "low", p50=round(jit["p50"], 3), max=round(jit["max"], 3), releases=jit["n"]))
    lat = lsl_latency(pipe)
    rows.append(_row("lsl_e2e_p99_ms", "LSL: last sample of a window pushed -> decision pushed on the "
                     "decision outlet, p99 (samples pushed one by one at 250 Hz, hop 0.1 s)",
                     round(lat["p99"], 3), "ms", 5.0, "low", p50=round(lat["p50"], 3), decisions=lat["n"],
                     split_ms=lat["split_ms"]))
    # Pinned to one core (as run_all runs this module) liblsl takes ~3.0 s to find a returning
    # outlet; unpinned ~1.2 s. Measured before the probes, which leave thousands of closed outlets.
    rec = lsl_reconnect()
    rows.append(_row("lsl_reconnect_s", "LSL: outlet away 0.5 s and back (same source id) -> its samples "
                     "in the source again, median of 3", round(rec["median_s"], 3), "s", 2.0, "low",
                     max_s=round(rec["max_s"], 3), rounds=rec["rounds"]))
    cap = lsl_capacity(pipe, first=1000, growth=1.25, top=4000)
    last = next((p for p in reversed(cap["probes"]) if "stage_share" in p), {})
    rows.append(_row("lsl_streams_per_engine", "LSL streams (22 ch, 250 Hz, 25-sample chunks, 4 "
                     "decisions/s each) one engine process on one core keeps up with (largest passing "
                     "probe; limited_by: why the search stopped)", cap["ceiling"], "streams",
                     2000, "high", baseline=30, failed_at=cap["failed_at"], measured=cap["measured"],
                     limited_by=cap["limited_by"],
                     stage_us_per_chunk=last.get("stage_us_per_chunk"),
                     stage_share=last.get("stage_share"), probes=cap["probes"]))
    mach = lsl_machine_capacity(pipe, workers=2, first=1000, growth=1.25, top=4000)
    rows.append(_row("lsl_streams_per_machine", "LSL streams the whole machine decodes with 2 engine "
                     "workers (`run --workers 2`) while the simulated amplifiers' outlets run on the "
                     "same cores (largest passing probe; limited_by: why the search stopped)",
                     mach["ceiling"], "streams", None, "high", failed_at=mach["failed_at"],
                     measured=mach["measured"], limited_by=mach["limited_by"], probes=mach["probes"]))
    scale = lsl_workers_scaling(pipe)
    rows.append(_row("lsl_workers_scaling", "LSL: 1 -> 2 engine workers on the same 500 streams, "
                     "load of one worker / largest load of two (2 = perfect; loads from CPU time)",
                     scale["ratio"], "ratio", None, "high", baseline=1.0, **scale))
    rows.extend(kafka_rows(pipe))
    rows[-1].setdefault("details", {})["total_s"] = round(time.monotonic() - started, 1)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("cmd", nargs="?", default="run")
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--prefix", default="s")
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--progress")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--schedule", action="store_true")
    parser.add_argument("--budget", type=float, default=480.0)
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--growth", type=float, default=1.25)
    parser.add_argument("--top", type=int, default=8000)
    a = parser.parse_args()
    if a.cmd == "lsl-push":
        lsl_push(a.n, a.prefix, a.chunk, a.wait, a.progress, a.offset, a.schedule)
    elif a.cmd == "lsl-scaling":
        import json

        from benchmarks.bench_engine import fitted_pipeline

        _lsl_env()
        print(json.dumps(lsl_workers_scaling(fitted_pipeline(n_trials_per_class=12)[0], a.n)))
    elif a.cmd == "lsl-capacity":  # the probe alone, pinned to one core as run_all does
        import json

        from benchmarks.bench_engine import fitted_pipeline

        _lsl_env()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        print(json.dumps(lsl_capacity(fitted_pipeline(n_trials_per_class=12)[0], a.budget, a.first,
                                      a.growth, a.top), indent=1))
    elif a.cmd == "lsl-machine":  # the 2-worker probe alone
        import json

        from benchmarks.bench_engine import fitted_pipeline

        _lsl_env()
        print(json.dumps(lsl_machine_capacity(fitted_pipeline(n_trials_per_class=12)[0], 2, a.budget,
                                              a.first, a.growth, a.top), indent=1))
    elif a.cmd == "kafka":  # the Kafka rows alone, pinned to one core as run_all does
        import json

        from benchmarks.bench_engine import fitted_pipeline

        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        print(json.dumps(kafka_rows(fitted_pipeline(n_trials_per_class=12)[0]), indent=1))
    elif a.cmd == "kafka-push":
        kafka_push(a.bootstrap, a.topic, a.streams, a.chunks, a.realtime)
    else:
        import json

        print(json.dumps(run(), indent=2, default=float))
