"""Shared parts of the streaming benchmarks: LSL config, child processes, timed sinks, the loop.

`bench_streaming` (LSL rows, the entry point and the children's command line) and `kafka_bench`
(Kafka rows) use these. Children run ``bench_streaming.py <command>`` on every core.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "bench_streaming.py"  #: the children's command line

SFREQ = 250.0
N_CH = 22
# BasePort away from liblsl's default 16572: thousands of bench outlets would otherwise take every
# port of the default range, and the tests running beside the bench (other checkouts, the same
# machine) could not open or find an outlet.
LSL_CFG = ("[ports]\nIPv6 = disable\nBasePort = 22000\nPortRange = 8192\n"
           "[multicast]\nResolveScope = machine\nAddressesOverride = {127.0.0.1}\n"
           "Interfaces = {127.0.0.1}\nTTLOverride = 0\n"
           "[lab]\nKnownPeers = {127.0.0.1}\n")


def _lsl_env() -> None:
    if "BCISTREAM_BENCH_LSLCFG" not in os.environ:
        path = Path(tempfile.mkdtemp(prefix="bench-lsl-")) / "lsl_api.cfg"
        path.write_text(LSL_CFG)
        os.environ["BCISTREAM_BENCH_LSLCFG"] = str(path)
    os.environ["LSLAPICFG"] = os.environ["BCISTREAM_BENCH_LSLCFG"]


@contextlib.contextmanager
def _all_cores():
    """Children started inside run on every core (the bench process itself stays pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def _child(*args: str) -> subprocess.Popen:
    with _all_cores():
        proc = subprocess.Popen([sys.executable, str(ENTRY), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=os.environ.copy())
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        raise RuntimeError(f"helper {args[0]} did not start: {line!r}")
    return proc


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


class _Timed:
    """Sink wrapper: latency of each decision = publish time - push time of its last sample.

    Also splits it (p50/p99 of each part): ``transport_in`` (push -> the poll that returned the
    chunk: producer, broker or outlet, fetch wait), ``engine`` (that poll -> decision) and
    ``publish`` (decision -> the sink's flush returned, e.g. the producer's ack).
    """

    def __init__(self, sink, clock):
        self.sink, self.clock, self.lat, self.count = sink, clock, [], 0
        self.parts: list[tuple[float, float, float]] = []
        self._pending = []

    def write(self, decisions):
        self.sink.write(decisions)
        self._pending.extend(decisions)
        self.count += len(decisions)

    def flush(self):
        self.sink.flush()
        now, mono = self.clock(), time.monotonic()
        for d in self._pending:
            if d.timestamp is None:
                continue
            self.lat.append((now - d.timestamp) * 1e3)
            arrival = d.arrival + (now - mono)  # the chunk's arrival on the push clock
            self.parts.append(((arrival - d.timestamp) * 1e3, (d.decided - d.arrival) * 1e3,
                               (mono - d.decided) * 1e3))
        self._pending = []

    def split(self, skip: int = 5) -> dict:
        parts = np.array(self.parts[skip:])
        if not len(parts):
            return {}
        return {name: {"p50": round(float(np.percentile(parts[:, i], 50)), 3),
                       "p99": round(float(np.percentile(parts[:, i], 99)), 3)}
                for i, name in enumerate(("transport_in", "engine", "publish"))}

    def close(self):
        self.sink.close()


class _Null:
    def write(self, decisions):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def _loop(engine, source, sinks, seconds: float, poll_timeout: float = 0.01) -> None:
    from bcistream.realtime.loop import run_loop

    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    run_loop(engine, source, sinks, stop, poll_timeout=poll_timeout)


def _row(id_, measure, value, unit, goal, better, baseline=None, **details):
    met = None if goal is None or value is None else (value <= goal if better == "low" else value >= goal)
    return {"id": id_, "measure": measure, "value": value, "unit": unit, "goal": goal, "baseline": baseline,
            "met": met, **({"details": details} if details else {})}
