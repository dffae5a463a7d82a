"""Closed loop, fast parts: recorder tap, trial format, writer + reader on a real folder store, watcher."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from bcistream.data.trial_format import RecordedTrial, decode_trial, encode_trial, trial_key
from bcistream.errors import DataError, ProfileError
from bcistream.pipeline import filter_recording
from bcistream.realtime.engine import Engine
from bcistream.realtime.loop import run_loop
from bcistream.realtime.memory import ListSink, MemorySource
from bcistream.realtime.recorder import Recorder, RecorderSink, RecordingSource
from bcistream.storage import open_store
from bcistream.streamer.closed_loop import ClosedLoop, ClosedLoopMetrics
from bcistream.streamer.model_watch import ModelWatcher
from bcistream.streamer.trial_writer import TrialWriter
from bcistream.training.recorded import load_recorded, parse_since
from tests.realtime_data import fitted_pipeline, synth_recording


class _ExhaustStop:
    """on_tick that stops the loop once the memory source is exhausted."""

    def __init__(self, source, stop, then=None) -> None:
        self.source, self.stop, self.then = source, stop, then

    def __call__(self, decisions) -> None:
        if self.then is not None:
            self.then(decisions)
        if self.source.exhausted:
            self.stop.set()


def _record(rec, pipe, *, maxsize=1000, chunk=25, preroll_s=1.0, **source_kw):
    engine = Engine(pipe, "1")
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    recorder = Recorder(rec.profile, q, preroll_s=preroll_s, version=lambda: engine.version)
    mem = MemorySource(rec, chunk, **source_kw)
    sink = ListSink()
    stop = threading.Event()
    run_loop(engine, RecordingSource(mem, recorder), [sink, RecorderSink(recorder)], stop,
             _ExhaustStop(mem, stop))
    RecorderSink(recorder).close()
    trials = []
    while not q.empty():
        trials.append(q.get_nowait())
    return trials, recorder, sink


def test_recorder_cuts_raw_trials_with_preroll_and_joins_decisions():
    rec = synth_recording(40.0, seed=1)
    pipe = fitted_pipeline()
    trials, recorder, sink = _record(rec, pipe, chunk=[7, 25, 40])
    prof = rec.profile
    pre = int(prof.sfreq)
    usable = [c for c in rec.cues if c.sample + prof.offset_samples - pre >= 0
              and c.sample + prof.offset_samples + prof.window_samples <= rec.n_samples]
    assert len(trials) == len(usable) == recorder.stats()["trials"]
    cue_decisions = {(d.stream_id, d.window_end): d for d in sink.decisions if d.trigger == "cue"}
    for trial, cue in zip(trials, usable, strict=True):
        start = cue.sample + prof.offset_samples - pre
        assert trial.label == cue.label and trial.cue_sample == cue.sample
        n = pre + prof.window_samples
        assert trial.data.dtype == np.float32 and trial.data.shape == (prof.n_channels, n)
        np.testing.assert_array_equal(trial.data, rec.data[:, start:start + n].astype(np.float32))
        d = cue_decisions[(trial.stream_id, trial.window_end)]
        assert trial.decision["label"] == d.label and trial.model_version == d.model_version == "1"
        assert trial.timestamps is not None
        assert trial.cue_timestamp == pytest.approx(1000.0 + cue.sample / 250)
    # The window of a trial, filtered from zero state over its pre-roll, is close to the engine's
    # continuously filtered window (the transient has died out after 1 s).
    cont = filter_recording(pipe, rec)
    X = pipe.named_steps["filter"].transform(trials[0].data[None].astype(np.float64))[0]
    end = trials[0].window_end
    ref = cont[:, end - prof.window_samples:end]
    assert np.abs(X - ref).max() < 0.05 * np.abs(ref).max()


def test_recorder_keeps_trials_of_chunks_longer_than_its_ring():
    rec = synth_recording(40.0, seed=1)
    small, _, _ = _record(rec, fitted_pipeline(), chunk=25)
    big, recorder, _ = _record(rec, fitted_pipeline(), chunk=4000)  # 16 s per chunk, ring ~8.5 s
    assert recorder.stats()["incomplete"] == 0
    assert [t.cue_sample for t in big] == [t.cue_sample for t in small]
    np.testing.assert_array_equal(big[-1].data, small[-1].data)


def test_recorder_with_timestamp_markers_and_unknown_cues():
    rec = synth_recording(30.0, seed=2)
    from dataclasses import replace

    from bcistream.data.recording import Cue

    cues = list(rec.cues)
    cues.append(Cue(cues[1].sample + 500, None))  # unknown class: never recorded
    rec = replace(rec, cues=tuple(sorted(cues, key=lambda c: c.sample)))
    trials, recorder, _ = _record(rec, fitted_pipeline(), marker_by="timestamp", marker_lag=30, seq=False)
    labelled = [c for c in rec.cues if c.label is not None and c.sample + 125 - 250 >= 0]
    assert [t.cue_sample for t in trials] == [c.sample for c in labelled]
    assert recorder.stats()["unlabelled"] == 1
    assert all(t.decision is not None for t in trials)  # joined by window end on timestamp-indexed streams


def test_recorder_overflow_is_counted_and_reported_never_blocks():
    rec = synth_recording(40.0, seed=3)
    trials, recorder, sink = _record(rec, fitted_pipeline(), maxsize=2)
    st = recorder.stats()
    assert len(trials) == 2 and st["overflow"] >= 3 and st["trials"] == 2
    events = [e for e in recorder.events if e.kind == "recorder_overflow"]
    assert len(events) == st["overflow"] and "queue is full" in events[0].detail
    assert sum(d.trigger == "cue" for d in sink.decisions) == len(rec.cues)  # decoding went on


def test_recorder_drops_trials_across_gaps():
    rec = synth_recording(40.0, seed=4, nan_at=(6.5, 7.0))  # inside the 2nd trial's window
    trials, recorder, _ = _record(rec, fitted_pipeline())
    assert recorder.stats()["incomplete"] >= 1
    assert all(np.isfinite(t.data).all() for t in trials)
    assert rec.cues[1].sample not in [t.cue_sample for t in trials]


def test_trial_format_roundtrip_and_bad_bytes(tmp_path):
    data = np.arange(22 * 10, dtype=np.float32).reshape(22, 10)
    trial = RecordedTrial("amp/1 x", "left", 500, 380, data, 4, {"name": "p"}, 12.5, np.arange(10.0), "3",
                          {"label": "right"}, 1.7e9)
    back = decode_trial(encode_trial(trial))
    assert back.key == trial.key and back.decision == {"label": "right"} and back.model_version == "3"
    np.testing.assert_array_equal(back.data, data)
    assert trial_key("sess", trial) == "trials/sess/amp_1_x/000000000500.npz"
    with pytest.raises(DataError, match="not a recorded trial"):
        decode_trial(b"garbage")


def test_writer_and_reader_roundtrip_dedup_since(tmp_path):
    rec = synth_recording(40.0, seed=5)
    pipe = fitted_pipeline()
    trials, _, _ = _record(rec, pipe)
    store = open_store(tmp_path / "store")
    for session, clock in (("s1", 100.0), ("s2", 200.0)):  # s2 replays s1: duplicates
        q: queue.Queue = queue.Queue()
        for t in trials:
            q.put(RecordedTrial(**{**t.__dict__, "recorded_at": clock + t.cue_sample / 1e6}))
        writer = TrialWriter(store, q, session=session).start()
        writer.stop()
        assert writer.written == len(trials) and writer.errors == 0
        assert store.exists(writer.manifest_key)
    (store.root / "trials" / "s1" / "junk.npz").write_bytes(b"not a trial")
    got = load_recorded(store.url)
    assert len(got) == len(trials)
    assert got.skipped == {"duplicate": len(trials), "unreadable": 1}
    assert list(got.cue_samples) == [t.cue_sample for t in trials]
    assert np.all(np.diff(got.recorded_at) >= 0)
    assert got.online_accuracy() is not None
    ep = got.epochs(pipe)
    assert ep.X.shape == (len(trials), 22, 750)
    assert len(load_recorded(store.url, since=150.0)) == len(trials)  # only s2, same trials
    assert len(load_recorded(store.url, since=1e9)) == 0
    assert parse_since("1970-01-01T00:02:30Z") == 150.0


def test_watcher_swaps_between_batches_and_refuses_incompatible_profile():
    from bcistream.data.profiles import load_profile
    from bcistream.data.recording import Cue, Recording
    from bcistream.pipeline import epochs_from_recording, fit_filtered, make_pipeline

    pipe_a, pipe_b = fitted_pipeline(0), fitted_pipeline(1)
    base = load_profile(None)
    other = base.model_copy(update={"name": "small", "channels": base.channels[:20]})
    rng = np.random.default_rng(0)
    rec = Recording(rng.standard_normal((20, 250 * 60)) * 1e-5, other,
                    tuple(Cue(250 + i * 1000, ("left", "right")[i % 2]) for i in range(14)), "x")
    small = make_pipeline(other)
    fit_filtered(small, epochs_from_recording(small, rec))
    registry = {"v": "1"}
    models = {"2": pipe_b, "3": small}
    watcher = ModelWatcher("1", lambda: registry["v"], lambda v: (models[v], v), poll_interval=0.05)
    engine = Engine(pipe_a, "1")
    assert watcher.poll_once() is None and watcher.apply(engine) is None
    registry["v"] = "3"
    assert watcher.poll_once() == "3"
    rec3 = watcher.apply(engine)
    assert rec3 is not None and not rec3.ok and engine.version == "1" and "3" in watcher.refused
    assert watcher.poll_once() is None  # a refused version is not loaded again
    registry["v"] = "2"
    assert watcher.poll_once() == "2"
    rec2 = watcher.apply(engine)
    assert rec2.ok and engine.version == "2" and watcher.current == "2"
    with pytest.raises(ProfileError):
        engine.swap_model(small, "3")
    kinds = [e.kind for e in watcher.events]
    assert kinds == ["swap_refused", "swap"]


def test_closed_loop_metrics_names(tmp_path):
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    metrics = ClosedLoopMetrics(registry)
    loop = ClosedLoop(synth_recording(10.0).profile, store=open_store(tmp_path), metrics=metrics,
                      queue_size=1)
    rec = synth_recording(40.0, seed=6)
    engine = Engine(fitted_pipeline(), "7")
    metrics.model(engine.version)
    mem = MemorySource(rec, 25)
    stop = threading.Event()
    # A stalled writer: the queue of 1 overflows.
    loop.writer.stop()
    run_loop(engine, loop.wrap_source(mem), [*loop.sinks()], stop,
             _ExhaustStop(mem, stop, lambda _d: loop.tick(engine)))
    loop.close()
    text = generate_latest(registry).decode()
    for name in ("bcistream_recorded_trials_total", "bcistream_recorder_overflow_total",
                 "bcistream_model_loaded_timestamp_seconds"):
        assert name in text
    assert "bcistream_model_info" not in text and "swaps_total" not in text  # the engine's (one family)
    overflow = [ln for ln in text.splitlines() if ln.startswith("bcistream_recorder_overflow_total")][0]
    assert float(overflow.split()[-1]) >= 1


@pytest.mark.slow  # imports mlflow and the k8s client (~8 s)
def test_retrain_cli_edges(tmp_path, monkeypatch, capsys):
    from bcistream.cli import main
    from bcistream.cli.retrain_cmds import parse_every

    assert parse_every("1h") == 3600 and parse_every("90") == 90 and parse_every("15m") == 900
    with pytest.raises(Exception, match="--every"):
        parse_every("soon")
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    assert main(["retrain", "--data", str(tmp_path)]) == 2
    assert "--data needs --subject" in capsys.readouterr().err
    assert main(["retrain", "--holdout-fraction", "1.5"]) == 2
    assert main(["retrain", "--store", str(tmp_path / "empty")]) == 0
    assert "nothing new: 0 recorded trial(s)" in capsys.readouterr().out
    assert main(["retrain", "--on", "k8s", "--dry-run", "--min-new-trials", "5"]) == 0
    out = capsys.readouterr().out
    assert "- retrain" in out and "--min-new-trials" in out
