"""The live input contract in the engine and the recorder: units, marker values, timing, sessions.

Transport-level versions of these (real LSL outlets, the real broker) are in
tests/test_input_contract_live.py; this file drives the engine directly with the chunks adapters
produce, over the whole family of each kind of input.
"""

from __future__ import annotations

import copy
import queue

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bcistream.pipeline import pipeline_profile
from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.protocols import Batch, Chunk, Marker
from bcistream.realtime.recorder import Recorder
from tests.realtime_data import fitted_pipeline, offline_windows, synth_recording

T0 = 1000.0
SF = 250.0


@pytest.fixture(scope="module")
def pipe():
    return fitted_pipeline()


@pytest.fixture(scope="module")
def rec():
    return synth_recording(20.0, seed=21)


def chunks_of(rec, sid="s", size=25, seq=True, data=None, session=None, seq0=0, t0=T0, declared=False):
    data = rec.data if data is None else data
    return [Chunk(sid, data[:, a:a + size], t0 + np.arange(a, min(a + size, data.shape[1])) / SF,
                  seq0 + a if seq else None, 0.0, session, declared)
            for a in range(0, data.shape[1], size)]


def run(engine, chunks, markers=(), recorder=None):
    out = []
    batches = [Batch([], list(markers))] + [Batch([c], []) for c in chunks]
    for b in batches:
        if recorder is not None:
            recorder.observe(b)
        got = engine.process(b)
        if recorder is not None:
            recorder.observe_decisions(got)
        out += got
    if recorder is not None:
        recorder.release()
    return out


def cue_markers(rec, value=lambda c: c.label, sid="s", by="sample", t0=T0):
    return [Marker(sid, value(c), sample=c.sample if by == "sample" else None,
                   timestamp=t0 + c.sample / SF if by == "timestamp" else None) for c in rec.cues]


def cue_view(decisions):
    return [(d.window_end, d.cue_label, d.label, d.probabilities) for d in decisions if d.trigger == "cue"]


# ------------------------------------------------------------------------------------------ units
def test_microvolts_without_declaration_are_refused_with_the_fix(pipe, rec):
    engine = Engine(pipe, "1")
    decisions = run(engine, chunks_of(rec, data=rec.data * 1e6), cue_markers(rec))
    assert decisions == []
    (ev,) = [e for e in engine.events.drain() if e.kind == "refused"]
    assert ev.reason == "units" and "microvolts" in ev.detail and "units" in ev.detail
    assert "--units microvolts" in ev.detail and "\n" not in ev.detail
    stats = engine.stats()
    assert stats["streams_refused_units"] == 1
    # The first 250 samples (10 chunks) were checked; the 10th is refused, and every chunk after it.
    assert stats["refused_by_reason"]["units"] == len(chunks_of(rec)) - 9
    # The same stream declared (converted by its adapter) decodes; volts undeclared pass the check.
    assert run(Engine(pipe, "1"), chunks_of(rec, declared=True), cue_markers(rec))
    assert run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec))


def test_nanovolt_scaled_and_declared_streams(pipe, rec):
    engine = Engine(pipe, "1")
    run(engine, chunks_of(rec, data=rec.data * 1e-6))
    (ev,) = [e for e in engine.events.drain() if e.kind == "refused"]
    assert ev.reason == "units" and "below" in ev.detail
    # Declared units are trusted: no check (the adapter converted them).
    engine = Engine(pipe, "1")
    assert run(engine, chunks_of(rec, declared=True))
    assert engine.stats()["streams_refused_units"] == 0


def test_unit_check_is_shorter_than_a_window():
    with pytest.raises(ValueError, match="unit_check_s"):
        Engine(fitted_pipeline(), "1", config=EngineConfig(unit_check_s=4.0))


# ---------------------------------------------------------------------------------------- markers
CODES = {"left": 769, "right": 770}


@pytest.mark.parametrize("value", [
    lambda c: c.label,
    lambda c: CODES[c.label],  # an int32 LSL marker outlet
    lambda c: str(CODES[c.label]),  # "769"
    lambda c: float(CODES[c.label]),  # 769.0 (JSON numbers)
    lambda c: str(CODES[c.label]).encode(),  # bytes
    lambda c: np.int32(CODES[c.label]),
    lambda c: c.label.upper(),  # the contract matches case-insensitively
    lambda c: f" {c.label}  ",  # and strips surrounding whitespace
], ids=["name", "int", "str-code", "float", "bytes", "np.int32", "upper", "spaces"])
def test_codes_and_names_give_the_same_cue_decisions(pipe, rec, value):
    want = cue_view(run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec)))
    assert want and {w[1] for w in want} == {"left", "right"}
    got = cue_view(run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec, value)))
    assert got == want


def test_profile_aliases_map_and_swap_with_the_model(pipe, rec):
    aliased = copy.deepcopy(pipe)
    prof = pipeline_profile(pipe)
    aliased.named_steps["filter"].profile = {**prof.to_dict(), "markers": {"T1": "left", "T2": "right"}}
    alias = {"left": "T1", "right": "T2"}
    want = cue_view(run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec)))
    got = cue_view(run(Engine(aliased, "1"), chunks_of(rec), cue_markers(rec, lambda c: alias[c.label])))
    assert got == want
    # Without the alias in the model's profile, T1 is no class: counted, never decided.
    engine = Engine(pipe, "1")
    assert cue_view(run(engine, chunks_of(rec), cue_markers(rec, lambda c: alias[c.label]))) == []
    want_counts = {v: [alias[c.label] for c in rec.cues].count(v) for v in ("T1", "T2")}
    assert engine.stats()["unmapped_markers"] == want_counts
    engine.swap_model(aliased, "2")
    assert engine.marker_map.map("t1").label == "left"


@pytest.mark.parametrize("bad", ["elbow", "left" * 1250, "le\x00ft", "", "   ", "left\nright", b"\xff\xfe",
                                 True, [769], float("nan"), 768, "1023"])
def test_unknown_or_malformed_labels_are_never_decided_or_scored(pipe, rec, bad):
    engine = Engine(pipe, "1")
    markers = cue_markers(rec, lambda c: bad)
    decisions = run(engine, chunks_of(rec), markers)
    assert [d for d in decisions if d.trigger == "cue"] == []
    assert all(d.cue_label is None for d in decisions)
    stats = engine.stats()
    if bad == "1023":  # the profile's rejection marker: counted apart
        assert stats["markers_rejected"] == len(markers)
        return
    assert stats["markers_unmapped"] == len(markers)
    (key,) = stats["unmapped_markers"]
    assert len(key) <= 64 and stats["unmapped_markers"][key] == len(markers)
    events = [e for e in engine.events.drain() if e.kind == "marker"]
    assert len(events) == 1 and "never decided" in events[0].detail  # reported once per value


def test_unknown_cue_code_gives_an_unscored_cue_decision(pipe, rec):
    decisions = run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec, lambda c: "783"))
    cues = [d for d in decisions if d.trigger == "cue"]
    assert len(cues) == len(rec.cues) and all(d.cue_label is None for d in cues)
    decisions = run(Engine(pipe, "1"), chunks_of(rec), cue_markers(rec, lambda c: None))
    assert [d.window_end for d in decisions if d.trigger == "cue"] == [d.window_end for d in cues]


def test_distinct_unmapped_values_are_bounded(pipe, rec):
    engine = Engine(pipe, "1")
    run(engine, chunks_of(rec)[:4], [Marker("s", f"m{i}", sample=10) for i in range(400)])
    counts = engine.stats()["unmapped_markers"]
    assert len(counts) == 257 and counts["<other>"] == 144 and sum(counts.values()) == 400


def test_recorder_stores_mapped_trials_only(pipe, rec):
    q: queue.Queue = queue.Queue()
    engine = Engine(pipe, "1")
    recorder = Recorder(pipeline_profile(pipe), q)
    markers = cue_markers(rec, lambda c: CODES[c.label]) + [Marker("s", "elbow", sample=300)]
    run(engine, chunks_of(rec), markers, recorder)
    trials = [q.get_nowait() for _ in range(q.qsize())]
    assert [t.label for t in trials] == [c.label for c in rec.cues][:len(trials)] and len(trials) >= 2
    assert all(t.decision is not None and t.decision["label"] in ("left", "right") for t in trials)
    assert recorder.stats()["unlabelled"] == 1


# ----------------------------------------------------------------------------------------- timing
def bursty(rec, burst=9, rng=None, sid="s", jitter=0.0):
    """One chunk per sample, as a push-per-sample driver: bursts of ``burst`` samples stamped with
    near-equal timestamps around the burst's middle (a few µs apart, sometimes decreasing)."""
    rng = rng or np.random.default_rng(0)
    n = rec.n_samples
    true = T0 + np.arange(n) / SF
    ts = np.empty(n)
    for a in range(0, n, burst):
        b = min(n, a + burst)
        ts[a:b] = true[a:b].mean() + rng.normal(0, 2e-6, b - a) + rng.uniform(-jitter, jitter)
    return [Chunk(sid, rec.data[:, i:i + 1], ts[i:i + 1], None, 0.0) for i in range(n)], ts


def test_push_per_sample_keeps_every_sample_and_decides_as_regular_chunks(pipe, rec):
    regular = Engine(pipe, "1")
    want = run(regular, chunks_of(rec, seq=False), cue_markers(rec, by="timestamp"))
    engine = Engine(pipe, "1")
    chunks, _ = bursty(rec)
    got = run(engine, chunks, cue_markers(rec, by="timestamp"))
    stats = engine.stats()
    assert stats["samples_in"] == rec.n_samples and stats["duplicate_samples"] == 0 and stats["gaps"] == 0
    # Same windows and labels; probabilities equal to float rounding (the running sums are added
    # up sample by sample instead of 25 at a time).
    assert [(d.trigger, d.window_end, d.cue_label, d.label) for d in got] == \
        [(d.trigger, d.window_end, d.cue_label, d.label) for d in want]
    np.testing.assert_allclose([d.probabilities["left"] for d in got],
                               [d.probabilities["left"] for d in want], rtol=0, atol=1e-12)
    assert sum(d.trigger == "cue" for d in got) == len(rec.cues)
    assert stats["timing_bursts"] > 0
    assert len([e for e in engine.events.drain() if e.kind == "timing"]) == 1  # reported once


def test_lsl_recover_resend_is_recognised_by_overlap_only(pipe, rec):
    """Without seq, a re-sent stretch (same timestamps AND values) is a duplicate; a burst is not."""
    chunks = chunks_of(rec, seq=False, size=50)
    resent = Chunk("s", rec.data[:, 480:550], T0 + np.arange(480, 550) / SF, None, 0.0)
    engine = Engine(pipe, "1")
    got = run(engine, chunks[:10] + [resent] + chunks[11:])
    want = run(Engine(pipe, "1"), chunks)
    assert [d.probabilities for d in got] == [d.probabilities for d in want]
    assert engine.stats()["duplicate_samples"] == 20 and engine.stats()["gaps"] == 0
    # Same timestamps, other values: new samples (an amplifier stamping a burst alike), kept.
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    other = Chunk("s", rec.data[:, 500:520] + 1e-7, T0 + np.arange(480, 500) / SF, None, 0.0)
    run(engine, chunks[:10] + [other])
    assert engine.stats()["duplicate_samples"] == 0 and engine.stats()["samples_in"] == 520


def test_a_sequence_outlier_is_refused_and_does_not_mute_the_stream(pipe, rec):
    chunks = chunks_of(rec)
    bad = Chunk("s", chunks[100].data, chunks[100].timestamps, 10**9, 0.0)
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    decisions = run(engine, chunks[:100] + [bad] + chunks[100:])
    want = run(Engine(pipe, "1", config=EngineConfig(triggers=("hop",))), chunks)
    assert [d.probabilities for d in decisions] == [d.probabilities for d in want]
    assert engine.stats()["refused_by_reason"] == {"seq-outlier": 1}
    # Without timestamps to judge it, a jump beyond max_gap_s is refused too; the stream goes on.
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    plain = [Chunk("s", c.data, None, c.seq, 0.0) for c in chunks]
    n = len(run(engine, plain[:100] + [Chunk("s", bad.data, None, 10**9, 0.0)] + plain[100:]))
    assert n == len(want) and engine.stats()["refused_by_reason"] == {"seq-outlier": 1}


def test_redelivery_is_a_duplicate_a_restart_is_a_new_segment(pipe, rec):
    chunks = chunks_of(rec)
    half = len(chunks) // 2
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    # Kafka re-delivery: the same chunks again (same seq, same timestamps) -> duplicates.
    got = run(engine, chunks[:half] + chunks[half - 8:half] + chunks[half:])
    want = run(Engine(pipe, "1", config=EngineConfig(triggers=("hop",))), chunks)
    assert [d.probabilities for d in got] == [d.probabilities for d in want]
    assert engine.stats()["duplicate_samples"] == 8 * 25 and engine.stats()["restarts"] == 0
    # The producer restarts: seq back at 0, timestamps 10 s later -> a new segment, decoded.
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    again = chunks_of(rec, t0=T0 + rec.n_samples / SF + 10.0)
    got = run(engine, chunks + again)
    first = run(Engine(pipe, "1", config=EngineConfig(triggers=("hop",))), chunks)
    assert len(got) == 2 * len(first)
    assert [d.probabilities for d in got[len(first):]] == [d.probabilities for d in first]
    assert engine.stats()["restarts"] == 1
    gap = [e for e in engine.events.drain() if e.kind == "gap"]
    assert len(gap) == 1 and gap[0].reason == "restart" and gap[0].size == 10 * 250  # 10 s of silence


def test_a_new_session_id_opens_a_segment_and_markers_follow_their_session(pipe, rec):
    chunks = chunks_of(rec, session="a")
    # The restarted producer's clock is not later (another machine): the session id tells.
    again = chunks_of(rec, session="b", t0=T0 - 500.0)
    markers_b = [Marker("s", c.label, sample=c.sample, session="b") for c in rec.cues]
    engine = Engine(pipe, "1")
    got = run(engine, chunks + again, cue_markers(rec) + markers_b)
    one = run(Engine(pipe, "1"), chunks, cue_markers(rec))
    assert cue_view(got) == cue_view(one) + [(e + rec.n_samples, c, lab, p) for e, c, lab, p in cue_view(one)]
    assert engine.stats()["restarts"] == 1


@settings(deadline=None, max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=6), seed=st.integers(0, 2**16),
       burst=st.integers(1, 12), jitter_ms=st.floats(0.0, 6.0))
@example(sizes=[1], seed=343, burst=9, jitter_ms=5.0)  # a cue near the stream's start: fit both sides
def test_parity_with_random_chunking_jitter_and_bursts(pipe, rec, sizes, seed, burst, jitter_ms):
    """Chunks without seq, timestamps jittered and stamped in bursts; cues by timestamp -> offline."""
    rng = np.random.default_rng(seed)
    _, ts = bursty(rec, burst=burst, rng=rng, jitter=jitter_ms / 1000.0)
    chunks, a, k = [], 0, 0
    while a < rec.n_samples:
        b = min(rec.n_samples, a + sizes[k % len(sizes)])
        chunks.append(Chunk("s", rec.data[:, a:b], ts[a:b], None, 0.0))
        a, k = b, k + 1
    engine = Engine(pipe, "1")
    decisions = run(engine, chunks, cue_markers(rec, by="timestamp"))
    assert engine.stats()["samples_in"] == rec.n_samples and engine.stats()["gaps"] == 0
    X = offline_windows(pipe, rec, [d.window_end for d in decisions])
    proba = pipe[1:].predict_proba(X)
    classes = list(pipe.named_steps["clf"].classes_)
    np.testing.assert_allclose([[d.probabilities[c] for c in classes] for d in decisions], proba, atol=1e-9)
    cue_ends = sorted(d.window_end for d in decisions if d.trigger == "cue")
    assert cue_ends == [c.sample + 875 for c in rec.cues if c.sample + 875 <= rec.n_samples]
    hop_ends = [d.window_end for d in decisions if d.trigger == "hop"]
    assert hop_ends == [int(np.floor(k * 62.5 + 0.5)) for k in range(12, 100)
                        if int(np.floor(k * 62.5 + 0.5)) <= rec.n_samples]


def test_a_new_session_that_carries_on_the_sequence_is_the_same_segment(pipe, rec):
    """A bridge that persisted its counter resumes (even overlapping) on the same clock: no restart."""
    chunks = chunks_of(rec, session="a")
    half = len(chunks) // 2
    resumed = [Chunk(c.stream_id, c.data, c.timestamps, c.seq, 0.0, "b") for c in chunks[half - 2:]]
    engine = Engine(pipe, "1")
    got = run(engine, chunks[:half] + resumed, cue_markers(rec))
    assert cue_view(got) == cue_view(run(Engine(pipe, "1"), chunks, cue_markers(rec)))
    assert engine.stats()["restarts"] == 0 and engine.stats()["duplicate_samples"] == 50


def test_run_coverage_counts_only_markers_that_are_cues(pipe, rec):
    from bcistream.realtime.monitor import RunMonitor

    engine, monitor = Engine(pipe, "1"), RunMonitor()
    markers = cue_markers(rec) + [Marker("s", "elbow", sample=5), Marker("s", 1023, sample=6)]
    for b in [Batch([], markers)] + [Batch([c], []) for c in chunks_of(rec)]:
        monitor.batch(b)
        engine.process(b)
        monitor.tick(engine)
    cov = monitor.coverage
    assert (cov.cues_seen, cov.cues_ignored, cov.cues_decided) == (len(rec.cues) + 2, 2, len(rec.cues))
    assert cov.cues_undecided == 0 and f"decided cues {len(rec.cues)}/{len(rec.cues)}" in cov.line()
