"""Closed loop end to end on a drifting synthetic subject, with a real MLflow sqlite registry and a real
folder store: record -> retrain -> promote -> hot swap mid-stream; kill -9 during recording; refusal of
a model whose profile does not fit the running streams."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.pipeline import decode_filtered, epochs_from_recording
from bcistream.realtime.engine import Engine
from bcistream.realtime.loop import run_loop
from bcistream.realtime.memory import ListSink, MemorySource
from bcistream.storage import open_store
from bcistream.streamer.closed_loop import ClosedLoop
from bcistream.streamer.model_watch import ModelWatcher
from bcistream.training.recorded import load_recorded
from bcistream.training.registry import alias_version, load_model, set_alias
from tests.closed_loop_support import GatedSource, drift_world, register, small_profile_model
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 25
N_RECORDED = 66  # cues recorded before the engine pauses for the retrain


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return drift_world(tmp_path_factory.mktemp("closed-loop"))


def _cli_env(monkeypatch, world, home: Path) -> None:
    monkeypatch.setenv("BCISTREAM_HOME", str(home))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", world["uri"])
    monkeypatch.setenv("BCISTREAM_MODEL_NAME", world["name"])
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")


def test_record_retrain_promote_and_hot_swap_mid_stream(world, tmp_path, monkeypatch, capsys):
    uri, name, E = world["uri"], world["name"], world["E"]
    _cli_env(monkeypatch, world, tmp_path / "home")
    store_url = str(tmp_path / "store")
    champ = load_model(f"models:/{name}@champion", uri)
    v1 = champ.version
    engine = Engine(champ.pipeline, v1)

    def load(version):
        got = load_model(f"models:/{name}/{version}", uri)
        return got.pipeline, got.version

    watcher = ModelWatcher(v1, lambda: alias_version(uri, name, "champion"), load, poll_interval=0.3)
    loop = ClosedLoop(champ.profile, store=open_store(store_url), watcher=watcher,
                      version=lambda: engine.version)
    prof = E.profile
    hold_at = E.cues[N_RECORDED - 1].sample + prof.offset_samples + prof.window_samples + 2 * CHUNK
    gate = GatedSource(MemorySource(E, CHUNK), hold_at, CHUNK)
    sink = ListSink()
    stop = threading.Event()

    def on_tick(_decisions):
        loop.tick(engine)
        if gate.exhausted:
            stop.set()

    runner = threading.Thread(target=run_loop, args=(engine, loop.wrap_source(gate), [sink, *loop.sinks()],
                                                     stop, on_tick))
    runner.start()
    try:
        wait_until(gate.held.is_set, 60, what="the engine to reach the pause")
        wait_until(lambda: loop.writer.written == loop.recorder.stats()["trials"] >= N_RECORDED - 2, 30,
                   what="recorded trials stored")
        # Too few new trials: exits 0 and says so (no challenger registered).
        assert main(["retrain", "--store", store_url, "--min-new-trials", "500"]) == 0
        assert "too few new trials" in capsys.readouterr().out
        assert main(["retrain", "--data", str(world["data"]), "--subject", str(world["subject"]),
                     "--store", store_url,
                     "--min-new-trials", "20", "--min-heldout", "15", "--holdout-fraction", "0.3"]) == 0
        out = capsys.readouterr().out
        assert "promoted" in out, out
        v2 = alias_version(uri, name, "champion")
        assert v2 not in (None, v1)
        # The running engine (polling empty batches while paused) swaps the new champion in.
        wait_until(lambda: engine.version == v2, 30, what="the hot swap")
        # A model for other streams is promoted by hand: the running engine refuses it.
        v3 = register(small_profile_model(), uri, name, None)
        set_alias(uri, name, "champion", v3)
        wait_until(lambda: v3 in watcher.refused, 30, what="the refusal")
        assert engine.version == v2
        set_alias(uri, name, "champion", v2)
        gate.released.set()
        runner.join(120)
    finally:
        stop.set()
        gate.released.set()
        runner.join(30)
        loop.close()
    assert not runner.is_alive()
    # Nothing new since the retrain except what was recorded after it: a second retrain judges those.
    assert main(["retrain", "--store", store_url, "--min-new-trials", "1000"]) == 0

    cue = [d for d in sink.decisions if d.trigger == "cue"]
    versions = [d.model_version for d in sink.decisions]
    k = versions.index(v2)
    assert set(versions[:k]) == {v1} and set(versions[k:]) == {v2}  # one clean switch
    assert max(d.window_end for d in sink.decisions[:k]) <= hold_at <= sink.decisions[k].window_end
    before = [d for d in cue if d.model_version == v1]
    after = [d for d in cue if d.model_version == v2]
    assert len(before) >= N_RECORDED - 2 and len(after) >= 20
    acc_before = np.mean([d.label == d.cue_label for d in before])
    acc_after = np.mean([d.label == d.cue_label for d in after])
    # The champion on the very same later windows (offline, continuous filter = engine parity).
    ep = epochs_from_recording(world["champion"], E)
    ends = {d.window_end for d in after}
    sel = np.array([e in ends for e in ep.window_end])
    acc_old_same = np.mean(decode_filtered(world["champion"], ep.X[sel])[0] == ep.y[sel])
    print(f"online accuracy before swap {acc_before:.3f} ({len(before)}), after {acc_after:.3f} "
          f"({len(after)}); champion on the same later trials {acc_old_same:.3f}")
    assert acc_after > acc_old_same
    rec = load_recorded(store_url)
    assert {v1, v2} <= set(rec.model_versions)
    assert sum(1 for d in cue if d.cue_label) - len(rec) <= 2  # every labelled cue recorded (edges aside)
    assert [e.kind for e in watcher.events].count("swap") == 1


def test_kill_during_recording_keeps_stored_trials_readable(world, tmp_path):
    store_url = tmp_path / "store"
    rec_path = world["E_path"]
    cmd = [sys.executable, "-m", "tests.closed_loop_support", "--recording", str(rec_path),
           "--store", str(store_url), "--model", str(world["folder"] / "champion.skops")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--pace", "0.002"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        store = open_store(store_url)
        wait_until(lambda: len([k for k in store.list("trials/") if k.endswith(".npz")]) >= 6, 120,
                   interval=0.005, what="trials being recorded")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    killed = load_recorded(store_url)
    assert killed.skipped.get("unreadable", 0) == 0 and len(killed) >= 6
    E = world["E"]
    order = [c.sample for c in E.cues if c.label is not None]
    # Complete up to the last finished trial: the stored cues are the first n cues, in order.
    assert list(killed.cue_samples) == order[:len(killed)]
    # Restart: a new session records from the start again; duplicates are read once.
    done = subprocess.run([*cmd, "--stop-after", str(len(killed) + 3)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    full = load_recorded(store_url)
    assert full.skipped.get("duplicate", 0) == len(killed) and full.skipped.get("unreadable", 0) == 0
    assert list(full.cue_samples) == order[:len(full)] and len(full) >= len(killed) + 3
