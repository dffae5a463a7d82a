"""Helpers of the closed-loop tests and benchmark: a drifting synthetic subject, a real MLflow sqlite
registry, a source that pauses mid-stream, and a recording process to kill (``python -m``)."""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

from bcistream.realtime.protocols import Batch

NAME = "closedloop"
#: Subject 3 (seed 0), with a deliberate electrode-shift drift added to session E (a fixed random
#: spatial mixing of the EEG channels on top of the generator's own session drift): a T-trained
#: champion loses ~20 points on E, and trials recorded from E win most of them back.
SUBJECT, SEED, PER_CLASS, DRIFT = 3, 0, 24, 0.4


def _save(raw, path: Path, drift: float = 0.0) -> None:
    import mne
    from scipy.io import savemat

    data = raw.get_data()
    if drift:
        rng = np.random.default_rng(SUBJECT)
        mix = np.eye(22) + drift * rng.standard_normal((22, 22)) / np.sqrt(22)
        data[:22] = mix @ data[:22]
    out = mne.io.RawArray(data, raw.info, verbose="error")
    out.set_annotations(raw.annotations)
    out.save(path, overwrite=True, verbose="error")
    labels = np.array([int(c) for c in raw.info["description"].split(":", 1)[1]], dtype=np.uint8)
    if path.name[3] == "E":
        savemat(path.with_name(path.name[:4] + ".mat"), {"classlabel": labels.reshape(-1, 1)})


def drift_world(folder: Path) -> dict:
    """Write T and drifted E, train a champion on T, register it in a sqlite registry (alias champion)."""
    from bcistream.data.loader import load_recording
    from bcistream.data.synth import synthesize_session
    from bcistream.pipeline import epochs_from_recording, fit_filtered, make_pipeline

    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    stem = f"A{SUBJECT:02d}"
    _save(synthesize_session(SUBJECT, "T", SEED, n_trials_per_class=PER_CLASS), data / f"{stem}T_raw.fif")
    _save(synthesize_session(SUBJECT, "E", SEED, n_trials_per_class=PER_CLASS), data / f"{stem}E_raw.fif",
          DRIFT)
    train = load_recording(data / f"{stem}T_raw.fif")
    evaluation = load_recording(data / f"{stem}E_raw.fif")
    assert all(c.label is not None for c in evaluation.cues)
    pipe = make_pipeline()
    fit_filtered(pipe, epochs_from_recording(pipe, train))
    uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    version = register(pipe, uri, NAME, "champion")
    import skops.io

    skops.io.dump(pipe, folder / "champion.skops")
    return {"data": data, "T": train, "E": evaluation, "uri": uri, "name": NAME, "champion": pipe,
            "version": version, "folder": folder, "subject": SUBJECT,
            "E_path": data / f"{stem}E_raw.fif"}


def register(pipe, uri: str, name: str, alias: str | None) -> str:
    """Log and register a fitted pipeline in a fresh run; point ``alias`` at it."""
    import mlflow

    from bcistream.training.registry import register_model, tracking
    from bcistream.training.tracking import ensure_experiment

    exp = ensure_experiment(uri, "bcistream")
    with tracking(uri):
        with mlflow.start_run(experiment_id=exp) as run:
            return register_model(pipe, tracking_uri=uri, name=name, run_id=run.info.run_id, alias=alias)


def small_profile_model():
    """A model fitted for 20-channel streams: its profile does not fit the 22-channel streams."""
    from bcistream.data.profiles import load_profile
    from bcistream.data.recording import Cue, Recording
    from bcistream.pipeline import epochs_from_recording, fit_filtered, make_pipeline

    base = load_profile(None)
    other = base.model_copy(update={"name": "twenty", "channels": base.channels[:20]})
    rng = np.random.default_rng(0)
    rec = Recording(rng.standard_normal((20, 250 * 70)) * 1e-5, other,
                    tuple(Cue(250 + i * 1000, base.class_names[i % 4]) for i in range(16)), "noise")
    pipe = make_pipeline(other)
    return fit_filtered(pipe, epochs_from_recording(pipe, rec))


class GatedSource:
    """A MemorySource that returns empty batches once sample ``hold_at`` is reached, until `release`."""

    def __init__(self, mem, hold_at: int, chunk: int) -> None:
        self.mem, self.hold_chunk = mem, hold_at // chunk
        self.held = threading.Event()
        self.released = threading.Event()

    def poll(self, timeout: float = 0.0) -> Batch:
        if self.mem.resume_point() >= self.hold_chunk and not self.released.is_set():
            self.held.set()
            self.released.wait(min(timeout, 0.01))
            return Batch()
        return self.mem.poll(timeout)

    def resume_point(self):
        return self.mem.resume_point()

    def commit(self, point) -> None:
        self.mem.commit(point)

    def close(self) -> None:
        self.mem.close()

    @property
    def exhausted(self) -> bool:
        return self.mem.exhausted


class PacedSource(GatedSource):
    """A MemorySource slowed down to ``per_poll_s`` per chunk (a live stream, faster than real time)."""

    def __init__(self, mem, per_poll_s: float) -> None:
        super().__init__(mem, 1 << 62, 1)
        self.per_poll_s = per_poll_s

    def poll(self, timeout: float = 0.0) -> Batch:
        time.sleep(self.per_poll_s)
        return self.mem.poll(timeout)


def record_main(argv: list[str] | None = None) -> int:
    """A recording engine process: E session -> engine (champion) -> recorder -> store. Killed by tests."""
    from bcistream.data.loader import load_recording
    from bcistream.pipeline import pipeline_profile
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.realtime.loop import run_loop
    from bcistream.realtime.memory import MemorySource
    from bcistream.storage import open_store
    from bcistream.streamer.closed_loop import ClosedLoop
    from bcistream.training.registry import TRUSTED_TYPES

    ap = argparse.ArgumentParser()
    ap.add_argument("--recording", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--model", required=True, help="skops file of the model (mlflow is slow to import)")
    ap.add_argument("--pace", type=float, default=0.0)
    ap.add_argument("--stop-after", type=int, default=0, help="stop once this many trials are stored")
    args = ap.parse_args(argv)
    import skops.io

    pipe = skops.io.load(args.model, trusted=list(TRUSTED_TYPES))
    rec = load_recording(args.recording)
    engine = Engine(pipe, "1", EngineConfig(triggers=("cue",)))
    loop = ClosedLoop(pipeline_profile(pipe), store=open_store(args.store), version=lambda: engine.version)
    # The writer checks its queue every 50 ms; write manifests often so a kill lands between them.
    loop.writer.manifest_every = 0.0
    mem = MemorySource(rec, 25)
    src = PacedSource(mem, args.pace) if args.pace > 0 else mem
    stop = threading.Event()

    def on_tick(_decisions) -> None:
        loop.tick(engine)
        if mem.exhausted or 0 < args.stop_after <= loop.writer.written:
            stop.set()

    run_loop(engine, loop.wrap_source(src), loop.sinks(), stop, on_tick)
    loop.close()
    print(f"recorded {loop.writer.written}", flush=True)
    return 0


def drain(q: queue.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


if __name__ == "__main__":
    sys.exit(record_main())
