"""The storage interface: a local folder and gs:// through a real gcp-storage-emulator on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bcistream.storage import GCSStore, LocalStore, StorageError, fetch_prefix, open_store
from tests.helpers import free_port, wait_until


def test_local_store_round_trip(tmp_path):
    store = open_store(tmp_path / "store")
    assert isinstance(store, LocalStore)
    assert store.list() == []
    store.write_bytes("a/b/one.bin", b"\x00\x01")
    store.write_bytes("two.txt", b"hello")
    store.write_bytes("two.txt", b"hello again")  # replace
    assert store.list() == ["a/b/one.bin", "two.txt"]
    assert store.list("a/") == ["a/b/one.bin"]
    assert store.read_bytes("two.txt") == b"hello again"
    assert store.exists("a/b/one.bin") and not store.exists("nope")
    assert store.local_copy("two.txt") == (tmp_path / "store" / "two.txt").resolve()
    # The atomic write leaves no temporary files behind.
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["a", "two.txt"]
    assert fetch_prefix(store) == (tmp_path / "store").resolve()


def test_local_store_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    store.write_bytes("x", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.write_bytes("x", b"new")
    monkeypatch.undo()
    assert store.read_bytes("x") == b"old"
    assert store.list() == ["x"]


@pytest.mark.parametrize("key", ["../escape", "/abs", ""])
def test_bad_keys_are_refused(tmp_path, key):
    with pytest.raises(StorageError, match="invalid store key"):
        LocalStore(tmp_path).write_bytes(key, b"")


def test_bad_urls(tmp_path):
    with pytest.raises(StorageError, match="unsupported"):
        open_store("s3://bucket/x")
    with pytest.raises(StorageError, match="gs://BUCKET"):
        open_store("gs://")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not a folder"):
        open_store(tmp_path / "file")
    with pytest.raises(StorageError, match="no such object"):
        open_store(tmp_path).read_bytes("missing")


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory):
    """A real gcp-storage-emulator on a free loopback port, with bucket ``test-bucket``."""
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    proc = subprocess.Popen(
        [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
         "--default-bucket", "test-bucket", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=tmp_path_factory.mktemp("gcs"),
    )
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="test", credentials=AnonymousCredentials())
        wait_until(lambda: client.bucket("test-bucket").exists(), timeout=30, what="GCS emulator")
        yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if old is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = old


@pytest.mark.slow
def test_gcs_round_trip_of_a_dataset(gcs_emulator, tmp_path):
    from bcistream.data.loader import find_subject_files, load_recording
    from bcistream.data.synth import make_small_dataset

    src = tmp_path / "src"
    files = make_small_dataset(src, subjects=1, seed=0, n_trials_per_class=3)
    store = open_store("gs://test-bucket/datasets/synth", cache_dir=tmp_path / "cache")
    assert isinstance(store, GCSStore)
    for path in files:
        store.write_bytes(path.name, path.read_bytes())
    assert store.list() == sorted(p.name for p in files)
    assert store.exists("A01T_raw.fif") and not store.exists("A09T_raw.fif")
    # Same objects seen by the plain client under the prefix.
    names = sorted(b.name for b in gcs_emulator.list_blobs("test-bucket", prefix="datasets/"))
    assert names == sorted(f"datasets/synth/{p.name}" for p in files)

    local = fetch_prefix(store)
    assert sorted(p.name for p in local.iterdir()) == sorted(p.name for p in files)
    for path in files:
        assert (local / path.name).read_bytes() == path.read_bytes()
    # Training resolves the same URL to that folder (what `train --data gs://...` does).
    from bcistream.training.datasets import resolve_data

    assert resolve_data("gs://test-bucket/datasets/synth", cache_dir=tmp_path / "cache") == local
    # The downloaded dataset is readable like the original.
    found = find_subject_files(local, 1)
    rec = load_recording(found["E"])
    assert all(c.label is not None for c in rec.cues)

    # A cached copy is reused while unchanged, refreshed when the object changes.
    copy = store.local_copy("A01E.mat")
    mtime = copy.stat().st_mtime_ns
    assert store.local_copy("A01E.mat").stat().st_mtime_ns == mtime
    store.write_bytes("A01E.mat", b"changed")
    assert store.local_copy("A01E.mat").read_bytes() == b"changed"

    with pytest.raises(StorageError, match="not found|no such object"):
        store.read_bytes("missing.bin")
    with pytest.raises(StorageError, match="no such object"):
        store.local_copy("missing.bin")
    # Note: the emulator ignores generation preconditions (if_generation_match), so nothing here
    # relies on them; a GCS upload is atomic per object, which is all write_bytes promises.
    shutil.rmtree(tmp_path / "cache")


@pytest.mark.slow
def test_mlflow_artifacts_on_gcs(gcs_emulator, tmp_path):
    """MLflow's artifact location can be gs:// (through the same emulator)."""
    import mlflow

    from bcistream.training.registry import tracking
    from bcistream.training.tracking import ensure_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = ensure_experiment(uri, "gcs-artifacts", "gs://test-bucket/mlflow")
    with tracking(uri), mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_dict({"ok": True}, "check.json")
    names = [b.name for b in gcs_emulator.list_blobs("test-bucket", prefix="mlflow/")]
    assert any(n.endswith(f"{run.info.run_id}/artifacts/check.json") for n in names)
