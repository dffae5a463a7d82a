"""Hot swap: watch the registry's champion and swap it into a running engine between chunks.

A `ModelWatcher` thread asks ``check()`` (e.g. the version under alias ``champion``) every
``poll_interval`` seconds — or at once when `poke` is called (a ``model-updates`` message) — and
loads a new version with ``load(version)`` off the decoding thread. The engine loop calls `apply`
from its ``on_tick``: a loaded model is swapped in there, between two batches, with
`Engine.swap_model`. A model whose profile does not fit the running streams is refused (the engine
raises `ProfileError`), reported, and not tried again; the old one keeps running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sklearn.pipeline import Pipeline

from bcistream.errors import ProfileError
from bcistream.realtime.events import EngineEvent, EventQueue

__all__ = ["ModelWatcher", "SwapRecord"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SwapRecord:
    """One swap (or refusal) as it happened."""

    old: str
    new: str
    ok: bool
    detected: float  #: monotonic time the new version was seen in the registry
    loaded: float  #: ... and loaded
    applied: float  #: ... and swapped in (or refused)
    wall: float  #: unix time of ``applied``
    reason: str = ""


class ModelWatcher:
    """Poll for a new model version, load it in the background, swap it in from the engine loop.

    Parameters
    ----------
    current : str
        The version the engine runs now.
    check : callable
        ``check() -> version or None``: the version that should run (cheap; called every poll).
    load : callable
        ``load(version) -> (pipeline, version)``.
    poll_interval : float
        Seconds between checks.
    """

    def __init__(self, current: str, check: Callable[[], str | None],
                 load: Callable[[str], tuple[Pipeline, str]], poll_interval: float = 30.0) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval}")
        self.current = str(current)
        self.check = check
        self.load = load
        self.poll_interval = float(poll_interval)
        self.events = EventQueue()
        self.swaps: list[SwapRecord] = []
        self.refused: dict[str, str] = {}
        self.polls = 0
        self.errors = 0
        self.last_error: str | None = None
        self._ready: tuple[Pipeline, str, float, float] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ thread
    def start(self) -> ModelWatcher:
        """Start the polling thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bcistream-model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End the polling thread (waits for a load in progress up to ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def poke(self) -> None:
        """Check now instead of at the next poll (a ``model-updates`` message arrived)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def poll_once(self) -> str | None:
        """Check the registry once; load a new version if there is one. Returns the version loaded."""
        self.polls += 1
        try:
            version = self.check()
        except Exception as exc:  # noqa: BLE001  (a registry outage must not stop decoding)
            self._error("check", exc)
            return None
        if version is None:
            return None
        version = str(version)
        with self._lock:
            pending = self._ready[1] if self._ready else None
        if version in (self.current, pending) or version in self.refused:
            return None
        detected = time.monotonic()
        try:
            pipeline, loaded = self.load(version)
        except Exception as exc:  # noqa: BLE001
            self._error(f"load v{version}", exc)
            return None
        with self._lock:
            self._ready = (pipeline, str(loaded), detected, time.monotonic())
        return str(loaded)

    def _error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        log.warning("model watcher: %s", self.last_error)
        self.events.append(EngineEvent("watch_error", None, reason=type(exc).__name__,
                                       detail=self.last_error))

    # ------------------------------------------------------------------ engine side
    def apply(self, engine) -> SwapRecord | None:
        """Swap a loaded model into ``engine`` (call between batches, from the loop's ``on_tick``).

        Returns the swap (or refusal) made, ``None`` when nothing was waiting.
        """
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        pipeline, version, detected, loaded = ready
        old = self.current
        try:
            engine.swap_model(pipeline, version)
        except ProfileError as exc:
            self.refused[version] = str(exc)
            rec = SwapRecord(old, version, False, detected, loaded, time.monotonic(), time.time(), str(exc))
            self.swaps.append(rec)
            self.events.append(EngineEvent("swap_refused", None, reason="profile",
                                           detail=f"model v{version} refused, v{old} keeps running: {exc}"))
            log.warning("model v%s refused: %s", version, exc)
            return rec
        self.current = str(engine.version)
        rec = SwapRecord(old, version, True, detected, loaded, time.monotonic(), time.time())
        self.swaps.append(rec)
        self.events.append(EngineEvent("swap", None, detail=f"model v{old} -> v{version} (registry)"))
        return rec
