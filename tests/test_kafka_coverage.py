"""A clean Kafka replay through the bundled broker, default settings: every cue is decided.

The replay flushes every chunk (one record per batch), which is what made tansu's fetches come back
empty once the partition held ~10 000 batches (see `bcistream.streamer.kafka_health`): without the
stall watch the engine stopped at about half the session, silently.
"""

from __future__ import annotations

import threading

import pytest

from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.loop import run_loop
from bcistream.realtime.monitor import RunMonitor
from bcistream.replay import replay
from bcistream.replay.player import KafkaTarget
from bcistream.streamer.kafka_source import KafkaSource
from tests.helpers import wait_until
from tests.kafka_broker import unique

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_session(tmp_path_factory):
    """72 cues, ~11 min of EEG: 16 649 chunks of 10 samples."""
    from bcistream.data.loader import load_recording
    from bcistream.data.synth import synthesize_session

    path = tmp_path_factory.mktemp("long") / "A01E_raw.fif"
    synthesize_session(1, "E", 1, n_trials_per_class=18).save(path, overwrite=True, verbose="error")
    return load_recording(path)


@pytest.mark.parametrize("run", [1, 2])
@pytest.mark.timeout(400)
def test_clean_replay_with_default_settings_decides_every_cue(run, long_session, stream_setup,
                                                              kafka_broker):
    rec = long_session
    topic = unique("cover")
    source = KafkaSource(kafka_broker.bootstrap, topic, group=unique("g"), markers_topic=f"{topic}.m",
                         n_channels=22, sfreq=rec.sfreq)
    engine = Engine(stream_setup.pipeline, "1", config=EngineConfig(triggers=("cue",)))
    monitor = RunMonitor()
    stop = threading.Event()
    loop = threading.Thread(target=run_loop, args=(engine, source, [], stop),
                            kwargs={"monitor": monitor}, daemon=True)
    loop.start()
    try:
        target = KafkaTarget(kafka_broker.bootstrap, "s1", rec.sfreq, topic, f"{topic}.m")
        try:
            replay(rec, target, speed=60.0, chunk=10)  # paced: one record per batch
        finally:
            target.close()
        wait_until(lambda: engine.stats()["samples_in"] >= rec.n_samples, timeout=120,
                   what=lambda: (f"all samples decoded ({engine.stats()['samples_in']} of {rec.n_samples}; "
                                 f"stalls {source.stats.stalls}, messages {source.stats.messages}, "
                                 f"assignment {sorted(map(str, source.assignment()))}, lag {source.lag()})"))
        wait_until(lambda: engine.stats()["cue_decisions"] >= len(rec.cues), timeout=30,
                   what="every cue decided")
    finally:
        stop.set()
        loop.join(30)
        source.close()
    assert engine.stats()["cue_decisions"] == len(rec.cues) == 72
    assert engine.stats()["cues_lost"] == 0
    assert all(v == 0 for v in source.lag().values())
    # A stall, when the broker had one, was reported (an event), never silent.
    assert monitor.by_kind().get("stall", 0) == source.stats.stalls
