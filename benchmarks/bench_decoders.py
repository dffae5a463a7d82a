"""Per decoder: streams per core (against the naive path in the same run) and the deciding call.

Every registered decoder is fitted on the same synthetic 4-class session (bench_engine's model
data) and driven the same way as bench_engine: 22-channel 250 Hz float32 streams in 25-sample
chunks with seq and timestamps, hop 0.25 s (4 decisions/s/stream), one pinned core, BLAS threads 1.

* ``streams_per_core``: CPU for 1 s of data of N streams, measured at N near half the capacity
  (a first probe at 200 streams sets N), extrapolated linearly: N / cpu. bench_engine bisects the
  real capacity of the default decoder; this is the cheaper per-decoder comparison.
* ``naive``: the decoder's own ``pipeline.predict`` on 750 raw samples from zero state per window
  (the no-engine baseline), streams per core = 1 / (4 x its CPU per decision).
* ``p99``: CPU of the one-stream ``process()`` call that decides (bench_engine.one_stream_latency).
* ``memory``: the engine's numeric state per stream (filter states, rings of running sums and
  timestamps) plus the raw history it keeps for swaps.
"""

from __future__ import annotations

import time

from benchmarks.bench_engine import (
    _signal,
    engine_cpu,
    fitted_pipeline,
    naive_per_decision,
    one_stream_latency,
)


def _capacity(pipe, signal) -> tuple[float, int, float]:
    n = 200
    cpu, _ = engine_cpu(pipe, signal, n, repeats=1)
    n2 = int(min(max(50, 0.5 * n / max(cpu, 1e-6)), 6000))
    cpu2, _ = engine_cpu(pipe, signal, n2, repeats=2)
    return n2 / cpu2, n2, cpu2


def _memory_per_stream(pipe) -> float:
    from bcistream.realtime.engine import Engine

    engine = Engine(pipe, "m")
    pool = engine.pool
    numeric = (pool.zi.nbytes + pool.qlast.nbytes + pool.sums.nbytes + pool.ts.nbytes) / pool.capacity
    raw = engine.n_channels * pool.raw_ring * 4  # float32 views of the chunks, up to raw_ring samples
    return (numeric + raw) / 1024.0


def run() -> list[dict]:
    from bcistream.decoders import DECODERS, compile_streaming

    rows = []
    for name in DECODERS:
        started = time.monotonic()
        pipe, rec = fitted_pipeline(decoder=name)
        signal = _signal(rec)
        dec = compile_streaming(pipe)
        naive = naive_per_decision(pipe, signal, repeats=60)
        naive_streams = 1.0 / (4 * naive)
        per_core, n, cpu = _capacity(pipe, signal)
        lat = one_stream_latency(pipe, signal, n_decisions=300)
        mem = _memory_per_stream(pipe)
        note = (f"{dec.n_features} features, {dec.n_moments} running sums per sample; probe {n} streams "
                f"= {cpu:.3f} s CPU per s; naive {naive * 1e3:.2f} ms/decision; "
                f"{time.monotonic() - started:.0f} s")
        rows += [
            {"id": f"{name}_streams_per_core", "measure": f"{name}: streams one core keeps in real time "
             "(linear from a probe near half capacity)", "value": int(per_core), "unit": "streams",
             "goal": None, "baseline": round(naive_streams), "met": per_core >= 10 * naive_streams,
             "details": note},
            {"id": f"{name}_ratio_vs_naive", "measure": f"{name}: engine / naive streams per core",
             "value": round(per_core / naive_streams, 1), "unit": "x", "goal": 10, "baseline": 1.0,
             "met": per_core / naive_streams >= 10},
            {"id": f"{name}_decision_p99_ms", "measure": f"{name}: one stream, process() call that "
             f"decides, p99 (final step p99 {lat['clf_p99']:.3f} ms)", "value": round(lat["p99"], 4),
             "unit": "ms", "goal": 0.2 if name == "csp-svm" else None, "baseline": round(naive * 1e3, 4),
             "met": lat["p99"] <= 0.2 if name == "csp-svm" else None},
            {"id": f"{name}_memory_kib_per_stream", "measure": f"{name}: engine state per stream",
             "value": round(mem, 1), "unit": "KiB", "goal": None, "baseline": None, "met": None},
        ]
    return rows
