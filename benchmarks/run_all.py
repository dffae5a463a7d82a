"""Run every ``benchmarks/bench_*.py`` and write ``bench-results/``.

Each module exposes ``run() -> list[dict]`` of summary rows
``{"id", "measure", "value", "unit", "goal", "baseline", "met"}`` (extra keys go to the module's own
JSON only). Each module runs in its own subprocess pinned to ONE core with BLAS/OpenMP threads
limited to 1 (set before numpy is imported), so numbers are per core and a crashing module does
not take the others down: its failure is recorded as an error row and the run goes on.

Usage: ``python benchmarks/run_all.py [NAME ...] [--out bench-results]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUMMARY_KEYS = ("id", "measure", "value", "unit", "goal", "baseline", "met")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS")


def discover(names: list[str] | None = None) -> list[str]:
    """Module names of the benchmarks (``bench_*.py``), optionally filtered."""
    found = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in names}
        found = [n for n in found if n in wanted]
    return found


def _pin() -> int | None:
    """Pin this process to one core (the last one allowed); return it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def module_timeout(name: str, default: float) -> float:
    """A module may need longer than the default: ``TIMEOUT_S = N`` at its top level raises it."""
    import re

    found = re.search(r"^TIMEOUT_S = (\d+)", (HERE / f"{name}.py").read_text(), flags=re.M)
    return max(default, float(found.group(1))) if found else default


def run_one(name: str, out: Path) -> None:
    """In the child: pin, import the module, call ``run()``, write ``<out>`` as JSON."""
    cpu = _pin()
    sys.path.insert(0, str(ROOT))
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.monotonic()
    rows = module.run()
    out.write_text(json.dumps({"module": name, "cpu": cpu, "seconds": round(time.monotonic() - started, 2),
                               "rows": rows}, indent=2, default=float))


def error_row(name: str, message: str) -> dict:
    """The summary row of a module that failed."""
    return {"id": f"{name}:error", "measure": f"benchmark failed: {message}"[:300], "value": None,
            "unit": "", "goal": None, "baseline": None, "met": False}


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown(rows: list[dict], host: dict) -> str:
    """The summary table."""
    lines = [f"Benchmarks on {host['machine']} ({host['cpus']} CPUs visible, load average "
             f"{host['load']}), one core per module, {host['date']}.", "",
             "| id | measure | value | unit | goal | baseline | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k in SUMMARY_KEYS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per module")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.result)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1"), "MNE_LOGGING_LEVEL": "WARNING",
           "BCISTREAM_BENCH_OUT": str(args.out)}  # where modules write extra files
    summary: list[dict] = []
    for name in discover(args.names):
        result = args.out / f"{name}.json"
        result.unlink(missing_ok=True)
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", name,
                                   "--result", str(result)], env=env,
                                  timeout=module_timeout(name, args.timeout),
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not result.exists():
                tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"exit {proc.returncode}: {tail[0]}")
            rows = json.loads(result.read_text())["rows"]
        except (subprocess.TimeoutExpired, RuntimeError, ValueError, KeyError) as exc:
            rows = [error_row(name, str(exc))]
            result.write_text(json.dumps({"module": name, "error": str(exc), "rows": rows}, indent=2))
        summary.extend({k: r.get(k) for k in SUMMARY_KEYS} for r in rows)
        print(f"   {len(rows)} rows in {time.monotonic() - started:.1f} s", flush=True)
    host = {"machine": platform.machine() + " " + platform.processor(), "cpus": os.cpu_count(),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg()), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                          time.gmtime())}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    table = markdown(summary, host)
    (args.out / "summary.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
