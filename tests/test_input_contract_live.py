"""The live input contract through the real transports: LSL outlets on loopback and the tansu broker.

Each test sends a synthetic recording the way a real rig would (µV amplifier apps with or without
channel units, int32 or string marker outlets, push-per-sample drivers, a restarted Kafka bridge,
a corrupt sequence number), collects what the source delivers, and decodes it with the engine
(markers first, so no cue depends on which inlet a poll reached first).
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from bcistream.data.profiles import load_profile
from bcistream.realtime.engine import Engine
from bcistream.realtime.protocols import Batch
from tests.helpers import wait_until
from tests.kafka_broker import unique
from tests.realtime_data import fitted_pipeline, synth_recording

pytestmark = pytest.mark.slow

PROFILE = load_profile(None)
SF = 250.0
CODES = {"left": 769, "right": 770}


@pytest.fixture(scope="module")
def pipe():
    return fitted_pipeline()


@pytest.fixture(scope="module")
def rec():
    return synth_recording(16.0, seed=31)


@pytest.fixture(scope="module")
def microvolts(rec):
    """The recording as a µV amplifier app sends it (float32), and the same samples in volts."""
    uv = (rec.data * 1e6).astype(np.float32)
    return uv, uv * np.float32(1e-6)


def rechunk(chunks, size=25):
    """The same samples and timestamps in chunks of ``size`` (LSL's chunking depends on timing)."""
    from bcistream.realtime.protocols import Chunk

    data = np.concatenate([c.data for c in chunks], axis=1)
    ts = np.concatenate([c.timestamps for c in chunks])
    sid, declared = chunks[0].stream_id, chunks[0].units_declared
    return [Chunk(sid, data[:, a:a + size], ts[a:a + size], None, 0.0, None, declared)
            for a in range(0, data.shape[1], size)]


def decode(pipe, chunks, markers):
    engine = Engine(pipe, "1")
    out = engine.process(Batch([], list(markers)))
    for ch in chunks:
        out += engine.process(Batch([ch], []))
    return engine, out


def collect(src, n_samples, n_markers, timeout=30.0):
    chunks, markers = [], []

    def check():
        b = src.poll(0.02)
        chunks.extend(b.chunks)
        markers.extend(b.markers)
        return sum(c.data.shape[1] for c in chunks) >= n_samples and len(markers) >= n_markers

    wait_until(check, timeout=timeout, what=f"{n_samples} samples and {n_markers} markers")
    return chunks, markers


# ------------------------------------------------------------------------------------------- LSL
def lsl_run(pipe, rec, data, *, units="microvolts", markers="string", per_sample=False, same_chunks=False):
    """Send ``data`` (C, n) through an EEG outlet (+ marker outlet) and decode what LslSource gets."""
    import pylsl

    from bcistream.streamer.lsl_source import MARKER_SUFFIX, LslSource

    name = "contract-" + uuid.uuid4().hex[:8]
    info = pylsl.StreamInfo(name, "EEG", 22, SF, pylsl.cf_float32, name)
    info.set_channel_labels(list(PROFILE.channels))
    if units is not None:
        info.set_channel_units(units)
    outlet = pylsl.StreamOutlet(info)
    fmt = pylsl.cf_int32 if markers == "int32" else pylsl.cf_string
    mout = pylsl.StreamOutlet(pylsl.StreamInfo(name + MARKER_SUFFIX, "Markers", 1, 0, fmt, name + "-m"))
    src = LslSource([name], PROFILE, markers=True, resolve_timeout=10)
    try:
        wait_until(lambda: outlet.have_consumers() and mout.have_consumers(), what="inlets connected")
        t0 = pylsl.local_clock() - rec.n_samples / SF - 1.0
        for c in rec.cues:
            value = {"string": c.label, "int32": CODES[c.label], "code-string": str(CODES[c.label])}[markers]
            mout.push_sample([value], t0 + c.sample / SF, True)
        samples = np.ascontiguousarray(data.T)
        if per_sample:  # a driver calling push_sample per sample: bursts of 9 near-equal timestamps
            rng = np.random.default_rng(0)
            for a in range(0, rec.n_samples, 9):
                b = min(rec.n_samples, a + 9)
                stamp = t0 + (a + b - 1) / 2 / SF
                for i in range(a, b):
                    outlet.push_sample(samples[i], stamp + rng.normal(0, 2e-6), True)
        else:
            for a in range(0, rec.n_samples, 25):
                b = min(rec.n_samples, a + 25)
                outlet.push_chunk(samples[a:b], t0 + (b - 1) / SF, True)
        chunks, got_markers = collect(src, rec.n_samples, len(rec.cues))
    finally:
        src.close()
    assert sum(c.data.shape[1] for c in chunks) == rec.n_samples  # every sample, none dropped
    engine, decisions = decode(pipe, rechunk(chunks) if same_chunks else chunks, got_markers)
    return engine, decisions, np.concatenate([c.data for c in chunks], axis=1)


def view(decisions):
    return [(d.trigger, d.window_end, d.cue_label, d.label, d.probabilities) for d in decisions]


def test_lsl_microvolts_without_units_are_refused_with_the_fix(pipe, rec, microvolts):
    engine, decisions, _ = lsl_run(pipe, rec, microvolts[0], units=None)
    assert decisions == []
    (ev,) = [e for e in engine.events.drain() if e.kind == "refused"]
    assert ev.reason == "units" and "microvolts" in ev.detail and "<unit>" in ev.detail


def test_lsl_microvolts_with_metadata_equal_volts_bit_for_bit(pipe, rec, microvolts):
    # The chunking LSL delivers depends on timing (and changes the last bit of running sums), so
    # both runs are decoded in the same chunking: the samples in volts must be identical.
    _, from_uv, uv_volts = lsl_run(pipe, rec, microvolts[0], units="microvolts", same_chunks=True)
    _, from_v, v_volts = lsl_run(pipe, rec, microvolts[1], units=None, same_chunks=True)  # undeclared
    assert np.array_equal(uv_volts, v_volts) and np.array_equal(v_volts, microvolts[1])
    assert from_uv and any(d.trigger == "cue" for d in from_uv)
    assert view(from_uv) == view(from_v)


def test_lsl_int32_codes_code_strings_and_names_give_the_same_cue_decisions(pipe, rec, microvolts):
    runs = [view(lsl_run(pipe, rec, microvolts[0], markers=kind, same_chunks=True)[1])
            for kind in ("string", "int32", "code-string")]
    cues = [d for d in runs[0] if d[0] == "cue"]
    assert len(cues) == len(rec.cues) and {d[2] for d in cues} == {"left", "right"}
    assert runs[1] == runs[0] and runs[2] == runs[0]


def test_lsl_push_per_sample_keeps_every_sample_and_decides_as_chunks(pipe, rec, microvolts):
    engine, bursty, _ = lsl_run(pipe, rec, microvolts[0], per_sample=True)
    _, regular, _ = lsl_run(pipe, rec, microvolts[0])
    assert engine.stats()["samples_in"] == rec.n_samples and engine.stats()["duplicate_samples"] == 0
    assert [v[:4] for v in view(bursty)] == [v[:4] for v in view(regular)]
    np.testing.assert_allclose([d.probabilities["left"] for d in bursty],
                               [d.probabilities["left"] for d in regular], rtol=0, atol=1e-12)
    assert sum(d.trigger == "cue" for d in bursty) == len(rec.cues)


# ----------------------------------------------------------------------------------------- Kafka
def kafka_topics(broker):
    names = {k: unique(k) for k in ("raw", "markers", "dead")}
    broker.create_topics({names["raw"]: 1, names["markers"]: 1, names["dead"]: 1})
    return names


def kafka_source(broker, names):
    from bcistream.streamer.kafka_source import KafkaSource

    return KafkaSource(broker.bootstrap, names["raw"], group=unique("g"), markers_topic=names["markers"],
                       dead_letter_topic=names["dead"], n_channels=22, sfreq=SF,
                       kafka_config={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300})


def send(prod, sid, rec, data, t0, marker=lambda c: c.label, skip=()):
    for c in rec.cues:
        prod.send_marker(sid, c.sample, marker(c))
    for a in range(0, rec.n_samples, 25):
        if a not in skip:
            prod.send_chunk(sid, data[:, a:a + 25], SF, a, t0 + a / SF)
    prod.flush()


def kafka_run(broker, pipe, rec, senders, n_samples, n_markers):
    from bcistream.streamer.kafka_sink import KafkaChunkProducer

    names = kafka_topics(broker)
    for kwargs, fn in senders:
        prod = KafkaChunkProducer(broker.bootstrap, names["raw"], names["markers"], **kwargs)
        try:
            fn(prod)
        finally:
            prod.close()
    src = kafka_source(broker, names)
    try:
        chunks, markers = collect(src, n_samples, n_markers, timeout=60)
    finally:
        src.close()
    engine, decisions = decode(pipe, chunks, markers)
    return engine, decisions, src


def test_kafka_units_header_equals_volts_bit_for_bit(kafka_broker, pipe, rec, microvolts):
    uv, v = microvolts
    n, m = rec.n_samples, len(rec.cues)
    _, from_uv, _ = kafka_run(kafka_broker, pipe, rec, [({"units": "microvolts"},
                                                         lambda p: send(p, "s", rec, uv, 50.0))], n, m)
    _, from_v, _ = kafka_run(kafka_broker, pipe, rec, [({}, lambda p: send(p, "s", rec, v, 50.0))], n, m)
    assert from_uv and view(from_uv) == view(from_v)
    # µV without the header (and no profile units): refused with the fix.
    engine, none, _ = kafka_run(kafka_broker, pipe, rec, [({}, lambda p: send(p, "s", rec, uv, 50.0))], n, m)
    assert none == [] and [e.reason for e in engine.events.drain() if e.kind == "refused"] == ["units"]


def test_kafka_restarted_producer_keeps_being_decoded(kafka_broker, pipe, rec, microvolts):
    v = microvolts[1]
    later = 50.0 + rec.n_samples / SF + 30.0
    engine, decisions, src = kafka_run(kafka_broker, pipe, rec, [
        ({}, lambda p: send(p, "s", rec, v, 50.0, marker=lambda c: CODES[c.label])),
        ({}, lambda p: send(p, "s", rec, v, later, marker=lambda c: str(CODES[c.label]))),  # seq from 0
    ], 2 * rec.n_samples, 2 * len(rec.cues))
    one = [d for d in decisions if d.window_end <= rec.n_samples]
    two = [d for d in decisions if d.window_end > rec.n_samples]
    assert len(two) == len(one) and sum(d.trigger == "cue" for d in two) == len(rec.cues)
    same = [(d.trigger, d.cue_label, d.label) for d in one]
    assert [(d.trigger, d.cue_label, d.label) for d in two] == same
    assert engine.stats()["restarts"] == 1 and src.stats.restarts == 1


def test_kafka_sequence_outlier_does_not_mute_the_stream(kafka_broker, pipe, rec, microvolts):
    v = microvolts[1]

    def corrupt(p):
        send(p, "s", rec, v, 50.0, skip=(2000,))
        p.send_chunk("s", v[:, 2000:2025], SF, 10**9, 50.0 + 2000 / SF)  # the chunk with a corrupt seq
        p.flush()

    engine, decisions, src = kafka_run(kafka_broker, pipe, rec, [({}, corrupt)], rec.n_samples - 25,
                                       len(rec.cues))
    assert src.stats.seq_outliers == 1 and src.stats.dead_letters == 1
    # The stream goes on after the lost chunk: decisions up to its end.
    assert max(d.window_end for d in decisions) > rec.n_samples - 100
    assert engine.stats()["gaps"] == 1


# ------------------------------------------------------------------------------------------- CLI

def _undeclared_amplifier(rec, n_samples: int):
    """An LSL outlet like many amplifier apps: µV, no channel metadata; pushes once an inlet connects.

    Returns the stream name and the outlet: the caller keeps the outlet alive until its run ends
    (a destroyed outlet drops the samples its inlet has not pulled yet).
    """
    import threading

    import pylsl

    name = "amp-" + uuid.uuid4().hex[:6]
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 22, SF, pylsl.cf_float32, name))
    uv = np.ascontiguousarray((np.nan_to_num(rec.data[:, :n_samples]) * 1e6).astype(np.float32).T)

    def amplifier():
        if outlet.wait_for_consumers(30):
            t0 = pylsl.local_clock()
            for a in range(0, len(uv), 25):
                outlet.push_chunk(uv[a:a + 25], t0 + (a + 24) / SF, True)

    threading.Thread(target=amplifier, daemon=True).start()
    return name, outlet


def test_run_units_option_declares_an_undeclared_amplifier(stream_setup, tmp_path):
    """The README's command for an amplifier app that sends µV without channel units."""
    import json

    from bcistream.cli import main

    name, _outlet = _undeclared_amplifier(stream_setup.recording, 5000)
    out = tmp_path / "decisions.jsonl"
    model = str(stream_setup.model_dir)
    code = main(["run", "--from", f"lsl:{name}", "--units", "microvolts", "--model", model,
                 "--to", f"jsonl:{out}", "--trigger", "hop", "--no-view", "--resolve-timeout", "20",
                 "--duration", "60", "--max-decisions", "20"])
    assert code == 0
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(decisions) >= 20 and {d["label"] for d in decisions} <= {"left", "right", "feet", "tongue"}
    assert main(["run", "--from", f"lsl:{name}", "--units", "parsecs", "--model", model, "--no-view",
                 "--duration", "1"]) == 2


def test_run_of_a_refused_stream_fails_instead_of_ending_quietly(stream_setup, capsys, caplog):
    """µV without any declared unit: refused with the fix named, and the run exits 2, not 0."""
    from bcistream.cli import main

    name, _outlet = _undeclared_amplifier(stream_setup.recording, 2500)
    code = main(["run", "--from", f"lsl:{name}", "--model", str(stream_setup.model_dir), "--no-view",
                 "--resolve-timeout", "20", "--idle-exit", "2", "--duration", "60"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: no decisions: chunks were refused (units" in err
    logged = [r.getMessage() for r in caplog.records if r.name == "bcistream.events"]
    # The refusal event names the likely unit and the option that fixes it.
    assert any("refused (units)" in m and "microvolts" in m and "--units" in m for m in logged), logged
