"""The Python API: lazy top-level exports, make_pipeline from Info / sfreq, quiet CSP, LiveSystem."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

import bcistream as bs
from bcistream.errors import BcistreamError, ProfileError
from tests.realtime_data import fitted_pipeline, synth_recording


def test_import_is_light_and_every_export_resolves():
    code = ("import sys, bcistream; heavy = [m for m in ('mne', 'sklearn', 'mlflow', 'bentoml', 'pylsl', "
            "'kafka') if m in sys.modules]; print(heavy); "
            "[getattr(bcistream, n) for n in bcistream.__all__]; "
            "print([m for m in ('mlflow', 'bentoml', 'pylsl') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after = out.strip().splitlines()
    assert before == "[]"  # import bcistream alone loads none of them
    assert after == "[]"  # even resolving every export leaves the server-side stacks unloaded
    assert set(bs.__all__) == {"__version__", *bs._EXPORTS}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bs.nope  # noqa: B018


def test_make_pipeline_from_sfreq_and_channel_names_and_from_info():
    import mne

    pipe = bs.make_pipeline(sfreq=128.0, ch_names=["C3", "Cz", "C4"], classes=["left", "right"])
    prof = pipe.named_steps["filter"].get_profile()
    assert prof.channels == ("C3", "Cz", "C4") and prof.sfreq == 128.0
    assert list(prof.class_names) == ["left", "right"] and prof.reject_marker is None
    info = mne.create_info(["C3", "Cz", "C4", "EOG1"], 250.0, ["eeg", "eeg", "eeg", "eog"])
    pipe = bs.make_pipeline(info=info, classes={"769": "left", "770": "right"})
    prof = pipe.named_steps["filter"].get_profile()
    assert prof.channels == ("C3", "Cz", "C4")  # EEG only, in the Info's order
    assert bs.profile_from(sfreq=100.0, ch_names=["a", "b"]).band[1] < 50.0  # kept below Nyquist
    for bad in ({"info": info, "sfreq": 250.0}, {"sfreq": 250.0}, {"info": "raw.info"},
                {"sfreq": 250.0, "ch_names": ["C3", "C3"]}):
        with pytest.raises(ProfileError):
            bs.make_pipeline(**bad)
    with pytest.raises(ProfileError, match="classes goes with info"):
        bs.make_pipeline("bci-iv-2a", classes=["a", "b"])


def test_csp_fit_is_quiet_unless_bcistream_logs_debug(caplog):
    pipe = bs.make_pipeline(sfreq=250.0, ch_names=["C3", "Cz", "C4"], classes=["left", "right"])
    X = np.random.default_rng(0).normal(size=(20, 3, 750))
    y = np.array(["left", "right"] * 10)
    with caplog.at_level(logging.INFO, logger="mne"):
        pipe[1:].fit(X, y)
    assert not [r for r in caplog.records if r.name == "mne"]
    caplog.clear()
    logging.getLogger("bcistream").setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.INFO, logger="mne"):
            pipe[1:].fit(X, y)
    finally:
        logging.getLogger("bcistream").setLevel(logging.NOTSET)
    assert any("covariance" in r.getMessage() for r in caplog.records if r.name == "mne")


def test_live_config_errors_name_python_parameters():
    for fields, message in (({"hop_s": 0}, "hop_s must be > 0"),
                            ({"classifier": "ftp://x"}, "classifier must be 'local' or an http(s) URL"),
                            ({"poll_interval": -1}, "poll_interval must be > 0"),
                            ({"trigger": "sometimes"}, "trigger")):
        with pytest.raises(ValueError, match=re.escape(message)):
            bs.LiveConfig(source="lsl:a", model="m", **fields)
    with pytest.raises(BcistreamError, match="source is empty"):
        bs.LiveSystem(bs.LiveConfig(model="m"))
    # Sources and sinks are checked when the config is made, not when the system opens.
    with pytest.raises(BcistreamError, match="sinks 'file:x': expected one of stdout"):
        bs.LiveConfig(sinks=["file:x"])
    with pytest.raises(BcistreamError, match="source 'foo:a': expected one of lsl:"):
        bs.LiveConfig(source="foo:a")


def test_live_system_runs_in_its_own_thread_and_stops_every_thread():
    pipe = fitted_pipeline()
    rec = synth_recording(30.0, seed=3)
    before = set(threading.enumerate())
    out = bs.ListSink()
    # A finite source ends the run; /metrics on a free port while it runs.
    system = bs.LiveSystem(bs.LiveConfig(trigger="both", sinks=[], metrics_port=0), pipeline=pipe,
                           version="7", source=bs.MemorySource(rec, chunk_size=10), sinks=[out])
    with system:
        assert system.metrics_url is not None
        system.start()
        summary = system.join(timeout=120)
        body = urllib.request.urlopen(system.metrics_url, timeout=10).read().decode()
    assert "bcistream_decisions_total" in body or "bcistream_" in body
    assert summary.decisions == len(out.decisions) > 0
    assert {d.model_version for d in out.decisions} == {"7"}
    assert "decoded samples" in summary.line() and summary.streams == 1
    assert out.closed
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leftover, leftover


def test_live_system_stop_ends_a_run_that_would_go_on():
    pipe = fitted_pipeline()
    rec = synth_recording(30.0, seed=4)

    class Endless(bs.MemorySource):
        exhausted = False  # a live source never ends by itself

        def poll(self, timeout: float = 0.0):
            batch = super().poll(timeout)
            if not batch.chunks:
                threading.Event().wait(timeout)
            return batch

    system = bs.LiveSystem(bs.LiveConfig(sinks=[]), pipeline=pipe, source=Endless(rec, chunk_size=25))
    with system:
        system.start()
        system.stop()
        system.join(timeout=60)


def test_run_live_max_decisions_and_summary():
    out = bs.ListSink()
    summary = bs.run_live(bs.LiveConfig(sinks=[], max_decisions=5), pipeline=fitted_pipeline(),
                          source=bs.MemorySource(synth_recording(30.0, seed=5), chunk_size=5), sinks=[out])
    assert 5 <= summary.decisions == len(out.decisions) < 20
