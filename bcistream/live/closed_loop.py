"""What recording (`LiveConfig.record`) and hot swaps (`LiveConfig.poll_interval`) add to the engine loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bcistream.errors import BcistreamError
from bcistream.realtime.events import EngineEvent
from bcistream.streamer.closed_loop import ClosedLoop, ClosedLoopMetrics

__all__ = ["setup_closed_loop"]

#: Events worth a line on stderr (lost windows are counted in the metrics instead).
_LOUD = {"swap", "swap_refused", "recorder_overflow", "watch_error"}


def setup_closed_loop(*, engine: Any, model: str, tracking_uri: str, profile: Any, registry: Any,
                      record: bool, record_store: str | None, record_preroll: float,
                      poll_interval: float | None, source_spec: str, bootstrap: str,
                      kafka_config: dict[str, Any], updates_topic: str,
                      say: Callable[[str], None]) -> ClosedLoop:
    """Build the recorder/writer and the model watcher a live run asks for.

    Parameters
    ----------
    engine : Engine
        The running engine (its version is the watcher's starting point).
    model : str
        The model URI; hot swap needs ``models:/NAME@ALIAS``.
    record_store : str or None
        Store URL of recorded trials (``None``: no recording).
    poll_interval : float or None
        Seconds between registry checks (``None``: no hot swap).
    say : callable
        Prints one line for people.
    """
    from bcistream.storage import open_store
    from bcistream.streamer.model_watch import ModelWatcher
    from bcistream.training.registry import alias_version, load_model

    metrics = ClosedLoopMetrics(registry)
    metrics.model(engine.version)
    watcher = None
    topic_listener = None
    if poll_interval is not None:
        if not model.startswith("models:/") or "@" not in model:
            raise BcistreamError(f"poll_interval needs model='models:/NAME@ALIAS', got '{model}'")
        if not poll_interval > 0:
            raise BcistreamError(f"poll_interval must be > 0, got {poll_interval}")
        name, _, alias = model[len("models:/"):].strip("/").partition("@")
        if not name or not alias:
            raise BcistreamError(f"poll_interval needs model='models:/NAME@ALIAS', got '{model}'")

        def load(version: str):
            got = load_model(f"models:/{name}/{version}", tracking_uri)
            return got.pipeline, got.version

        watcher = ModelWatcher(engine.version, lambda: alias_version(tracking_uri, name, alias), load,
                               poll_interval)
        if source_spec.startswith("kafka:") and updates_topic:
            from bcistream.streamer.model_updates import ModelUpdateListener

            topic_listener = ModelUpdateListener(bootstrap, name, lambda _msg: watcher.poke(), updates_topic,
                                                 kafka_config)
        say(f"watching models:/{name}@{alias} every {poll_interval:g} s"
            + (f" and topic '{updates_topic}'" if topic_listener else ""))

    def on_event(ev: EngineEvent) -> None:
        if ev.kind in _LOUD:
            say(f"{ev.kind}: {ev.detail}")

    if record and not record_store:
        raise BcistreamError("record needs record_store (a folder or gs://bucket/prefix)")
    store = open_store(record_store) if record and record_store else None
    loop = ClosedLoop(profile, store=store, watcher=watcher, metrics=metrics, preroll_s=record_preroll,
                      version=lambda: engine.version, on_event=on_event)
    if topic_listener is not None:
        loop.listeners.append(topic_listener.start())
    if loop.writer is not None and store is not None:
        say(f"recording labelled trials to {store.url} (session {loop.writer.session})")
    return loop
