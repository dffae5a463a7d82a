"""Open-file budget of many LSL inlets: real liblsl inlets in child processes with lowered limits.

liblsl keeps 12 descriptors per inlet; at the usual soft limit of 1 024 an engine used to stop at
~80 streams with "Too many open files" retried in liblsl's threads and a pylsl timeout a minute
later. Each case runs in a child because ``RLIMIT_NOFILE`` is per process (pytest's own must stay).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pylsl
import pytest

from bcistream.streamer.lsl_limits import FILES_PER_INLET, RESERVE, max_inlets

N = 24


@pytest.fixture(scope="module")
def outlets():
    """``N`` real 22-channel outlets in this process (its limit is not lowered)."""
    tag = uuid.uuid4().hex[:6]
    names = [f"fd-{tag}-{i}" for i in range(N)]
    outs = [pylsl.StreamOutlet(pylsl.StreamInfo(n, "EEG", 22, 250.0, pylsl.cf_float32, n)) for n in names]
    yield names
    outs.clear()


def _child(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


def test_files_per_inlet_matches_the_installed_liblsl(outlets):
    out = _child(f"""
        import os, pylsl
        infos = [pylsl.resolve_byprop("name", n, 1, 10)[0] for n in {outlets[:6]!r}]
        before = len(os.listdir("/proc/self/fd"))
        inlets = [pylsl.StreamInlet(i, max_buflen=30, recover=True) for i in infos]
        for x in inlets:
            x.open_stream(10)
            try:
                x.time_correction(1.0)
            except Exception:
                pass
        print((len(os.listdir("/proc/self/fd")) - before) / len(inlets))
        os._exit(0)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    per = float(out.stdout.split()[-1])
    assert abs(per - FILES_PER_INLET) <= 1, per


def test_soft_limit_is_raised_so_every_inlet_opens(outlets):
    # Soft limit 160: the 24 inlets alone need 288 descriptors.
    out = _child(f"""
        import os, resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (160, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from bcistream.data.profiles import load_profile
        from bcistream.streamer.lsl_source import LslSource
        src = LslSource({outlets!r}, load_profile(None), markers=False, resolve_timeout=10)
        print(len(src.stream_ids), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        os._exit(0)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    opened, soft = map(int, out.stdout.split()[-2:])
    assert opened == N
    assert soft >= N * FILES_PER_INLET + RESERVE


def test_streams_beyond_the_hard_limit_are_refused_up_front(outlets):
    limit = RESERVE + 10 * FILES_PER_INLET  # room for 10 inlets, 24 asked
    out = _child(f"""
        import os, resource
        resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
        from bcistream.data.profiles import load_profile
        from bcistream.streamer.lsl_limits import OpenFilesError
        from bcistream.streamer.lsl_source import LslSource
        try:
            LslSource({outlets!r}, load_profile(None), markers=False, resolve_timeout=10)
        except OpenFilesError as exc:
            print("refused:", exc)
        os._exit(0)
    """)
    assert "refused:" in out.stdout, (out.stdout, out.stderr[-2000:])
    msg = out.stdout.split("refused:", 1)[1]
    assert f"{N} LSL inlets need" in msg and f"at most {limit}" in msg and "--workers N" in msg
    assert "one process holds up to" in msg
    assert "Too many open files" not in out.stderr  # refused before liblsl ran out


def test_max_inlets_follows_the_limit():
    assert max_inlets(RESERVE + 100 * FILES_PER_INLET) == 100
    assert max_inlets(RESERVE + 100 * FILES_PER_INLET, in_use=120) == 90
    assert max_inlets(float("inf")) == float("inf")
    assert max_inlets(10) == 0


def test_a_limit_that_holds_no_inlet_says_so(outlets):
    out = _child(f"""
        import os, resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40,) * 2)
        from bcistream.data.profiles import load_profile
        from bcistream.streamer.lsl_limits import OpenFilesError
        from bcistream.streamer.lsl_source import LslSource
        try:
            LslSource({outlets[:1]!r}, load_profile(None), markers=False, resolve_timeout=10)
        except OpenFilesError as exc:
            print("refused:", exc)
        os._exit(0)
    """)
    msg = out.stdout.split("refused:", 1)[-1]
    assert "not one inlet fits: raise the hard limit" in msg, (out.stdout, out.stderr[-2000:])


def test_run_refuses_workers_that_cannot_hold_their_streams():
    # A child whose hard limit holds 10 inlets: --workers 1 with 24 streams is refused in one line
    # before anything opens; unset, enough workers are planned (checked by plan_workers below).
    limit = RESERVE + 10 * FILES_PER_INLET
    names = ",".join(f"x{i}" for i in range(N))
    out = _child(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
        from bcistream.cli import main
        from bcistream.live import LiveConfig
        from bcistream.live.plan import plan_workers
        from bcistream.streamer.lsl_limits import max_inlets
        planned = plan_workers(LiveConfig(source="lsl:{names}", model="m", workers=None))
        print("planned", planned, max_inlets())
        sys.exit(main(["run", "--from", "lsl:{names}", "--model", "/nowhere/model", "--workers", "1",
                       "--no-view"]))
    """)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: workers=1 puts up to 24 LSL streams"), lines
    assert "use at least" in lines[0] and "CLI --workers" in lines[0]
    # 24 streams + their 24 cue streams over processes of ``per`` inlets each (~10 here).
    planned, per = map(int, out.stdout.split()[-2:])
    assert 0 < per < 24 and planned == -(-2 * N // per)
