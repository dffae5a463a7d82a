"""The trial writer: drains the recorder's queue into a store, one object per trial.

Layout in the store (``bcistream.data.trial_format``)::

    trials/<session>/<stream>/<cue sample>.npz   one trial, written whole (write-then-rename / one upload)
    trials/<session>/manifest.jsonl              index of the session, rewritten whole now and then

Killing the process loses at most the trial being written: every stored object is complete, and a
reader rebuilds what the manifest lacks from the listing. The writer runs one thread that `stop`
ends (after writing what is queued, within a deadline).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from bcistream.data.trial_format import TRIALS_PREFIX, RecordedTrial, encode_trial, trial_key
from bcistream.storage import Store

__all__ = ["TrialWriter", "new_session_id"]

log = logging.getLogger(__name__)


def new_session_id(clock: Callable[[], float] = time.time) -> str:
    """``20261128T110203Z-<pid>``: sortable, unique per process start."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock())) + f"-{os.getpid()}"


class TrialWriter:
    """Write queued `RecordedTrial` objects to ``store`` in a thread of its own.

    Parameters
    ----------
    store : Store
        A folder or ``gs://`` store (`bcistream.storage.open_store`).
    source : queue.Queue
        The recorder's bounded queue.
    session : str, optional
        Session folder name (default `new_session_id`).
    manifest_every : float
        Seconds between manifest rewrites (also written at `stop`).
    on_written : callable, optional
        Called with each trial once it is stored (metrics).
    """

    def __init__(self, store: Store, source: queue.Queue, *, session: str | None = None,
                 manifest_every: float = 5.0,
                 on_written: Callable[[RecordedTrial], None] | None = None) -> None:
        self.store = store
        self.source = source
        self.session = session or new_session_id()
        self.manifest_every = manifest_every
        self.on_written = on_written
        self.written = 0
        self.errors = 0
        self.last_error: str | None = None
        self._lines: list[str] = []
        self._manifest_at = 0.0
        self._manifest_n = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def manifest_key(self) -> str:
        """Key of this session's manifest."""
        return f"{TRIALS_PREFIX}{self.session}/manifest.jsonl"

    def start(self) -> TrialWriter:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bcistream-trial-writer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (until ``timeout``), write the manifest, end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("trial writer still busy after %.1f s; %d trial(s) left unwritten",
                            timeout, self.source.qsize())
        self._thread = None

    def write_one(self, trial: RecordedTrial) -> None:
        """Store one trial and note it for the manifest (errors are counted, not raised)."""
        key = trial_key(self.session, trial)
        try:
            self.store.write_bytes(key, encode_trial(trial))
        except Exception as exc:  # noqa: BLE001  (a store failure must not end recording)
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("could not store trial %s: %s", key, self.last_error)
            return
        self.written += 1
        self._lines.append(json.dumps({"key": key, **{k: v for k, v in trial.meta().items()
                                                        if k not in ("profile", "extra")}}))
        if self.on_written is not None:
            self.on_written(trial)

    def write_manifest(self) -> None:
        """Rewrite the session manifest whole (an atomic replace: old or new, never a part)."""
        if self._manifest_n == len(self._lines):
            return
        n = len(self._lines)
        try:
            self.store.write_bytes(self.manifest_key, ("\n".join(self._lines[:n]) + "\n").encode())
            self._manifest_n = n
        except Exception as exc:  # noqa: BLE001
            self.errors += 1
            self.last_error = f"manifest: {type(exc).__name__}: {exc}"
            log.warning("could not write %s: %s", self.manifest_key, exc)

    def _run(self) -> None:
        while True:
            try:
                trial = self.source.get(timeout=0.05)
            except queue.Empty:
                trial = None
            if trial is not None:
                self.write_one(trial)
            now = time.monotonic()
            if now - self._manifest_at >= self.manifest_every:
                self.write_manifest()
                self._manifest_at = now
            if trial is None and self._stop.is_set():
                break
        self.write_manifest()
