"""Engine behaviour: gaps, duplicates, bad chunks, markers, triggers, counters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bcistream.realtime.engine import Engine, EngineConfig
from bcistream.realtime.memory import MemorySource
from bcistream.realtime.protocols import Batch, Chunk, Marker
from tests.realtime_data import fitted_pipeline, offline_windows, run_all, synth_recording

WIN = 750


@pytest.fixture(scope="module")
def pipe():
    return fitted_pipeline()


@pytest.fixture(scope="module")
def rec():
    return synth_recording(12.0, seed=5)


def chunks_of(rec, sid="s", size=50, seq=True, ts=True, start=0, stop=None):
    stop = rec.n_samples if stop is None else stop
    out = []
    for a in range(start, stop, size):
        b = min(stop, a + size)
        out.append(Chunk(sid, rec.data[:, a:b], 100.0 + np.arange(a, b) / 250.0 if ts else None,
                         a if seq else None, 0.0))
    return out


def feed(engine, chunks, markers=()):
    out = engine.process(Batch([], list(markers)))
    for ch in chunks:
        out += engine.process(Batch([ch], []))
    return out


def test_hop_rule_and_latency(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(hop_s=0.25, triggers=("hop",)))
    decisions = run_all(engine, MemorySource(rec, chunk_size=25))
    ends = [d.window_end for d in decisions]
    assert ends[:4] == [750, 813, 875, 938]
    assert all(d.trigger == "hop" and d.latency_ms >= 0 and d.decided >= d.arrival for d in decisions)
    assert decisions[0].timestamp == pytest.approx(1000.0 + 749 / 250.0)
    assert engine.stats()["hop_decisions"] == len(decisions)


def test_gap_by_seq_resets_and_reports_size(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    chunks = chunks_of(rec, size=50)
    dropped = chunks[30:33]  # samples 1500..1650 never arrive
    decisions = feed(engine, [c for c in chunks if c not in dropped])
    gaps = [e for e in engine.events.drain() if e.kind == "gap"]
    assert [(g.stream_id, g.size) for g in gaps] == [("s", 150)]
    ends = [d.window_end for d in decisions]
    # No window crosses the gap: after it, the first window starts at the restart (1650).
    after = [e for e in ends if e > 1500]
    assert min(after) >= 1650 + WIN
    # ... and equals the offline path on a recording whose missing stretch restarts the filter.
    gapped = synth_recording(12.0, seed=5)
    gapped.data[:, 1500:1650] = np.nan
    X = offline_windows(pipe, gapped, after)
    got = np.array([[d.probabilities[c] for c in pipe.named_steps["clf"].classes_] for d in decisions
                    if d.window_end in after])
    np.testing.assert_allclose(got, pipe[1:].predict_proba(X), atol=1e-9)


def test_gap_by_timestamps_without_seq(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    chunks = chunks_of(rec, size=50, seq=False)
    feed(engine, chunks[:10] + chunks[12:])
    gaps = [e for e in engine.events.drain() if e.kind == "gap"]
    assert [g.size for g in gaps] == [100]
    assert engine.streams["s"].index == rec.n_samples  # indices follow the clock across the gap


def test_duplicates_are_dropped_never_decided_twice(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    chunks = chunks_of(rec, size=50)
    overlap = Chunk("s", rec.data[:, 1230:1300], None, 1230, 0.0)
    replayed = chunks[:20] + chunks[15:25] + [overlap] + chunks[26:]
    decisions = feed(engine, replayed)
    ends = [d.window_end for d in decisions]
    assert len(ends) == len(set(ends))
    clean = feed(Engine(pipe, "1", config=EngineConfig(triggers=("hop",))), chunks)
    assert [d.probabilities for d in decisions] == [d.probabilities for d in clean]
    assert engine.stats()["duplicate_samples"] == 5 * 50 + 20
    assert engine.stats()["gaps"] == 0


@pytest.mark.parametrize(("bad", "reason"), [
    (lambda d: d[:21], "channels"),
    (lambda d: (d * 1e6).astype(np.int32), "dtype"),
    (lambda d: np.where(np.arange(d.shape[1]) == 3, np.nan, d), "non-finite"),
    (lambda d: np.where(np.arange(d.shape[1]) == 3, np.inf, d), "non-finite"),
    (lambda d: d[0], "shape"),
])
def test_bad_chunks_are_refused_for_that_stream_only(pipe, rec, bad, reason):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    good = chunks_of(rec, "good", size=50)
    other = chunks_of(rec, "other", size=50)
    decisions = []
    for i, (g, o) in enumerate(zip(good, other, strict=True)):
        if i == 20:
            o = Chunk("other", bad(o.data), None, o.seq, 0.0)
        decisions += engine.process(Batch([o, g], []))
    stats = engine.stats()
    assert stats["refused"] == 1 and stats["refused_by_reason"] == {reason: 1}
    ev = [e for e in engine.events.drain() if e.kind == "refused"]
    assert ev[0].stream_id == "other" and ev[0].reason == reason
    n_good = len([d for d in decisions if d.stream_id == "good"])
    assert n_good == len(feed(Engine(pipe, "1", config=EngineConfig(triggers=("hop",))), good))
    # The other stream restarts after the refused chunk: nothing decided on a window touching it.
    other_ends = [d.window_end for d in decisions if d.stream_id == "other"]
    assert not [e for e in other_ends if 1000 < e < 1050 + WIN]
    assert max(other_ends) > 1050 + WIN


def test_markers_by_timestamp_before_and_after_samples(pipe, rec):
    cfg = EngineConfig(triggers=("cue",))
    cue = rec.cues[1]
    ts = 100.0 + cue.sample / 250.0
    early, late = Engine(pipe, "1", config=cfg), Engine(pipe, "1", config=cfg)
    got_early = feed(early, chunks_of(rec), [Marker("s", cue.label, timestamp=ts)])
    got_late = feed(late, chunks_of(rec, stop=cue.sample + 1000))
    got_late += late.process(Batch([], [Marker("s", cue.label, timestamp=ts)]))
    by_sample = feed(Engine(pipe, "1", config=cfg), chunks_of(rec),
                     [Marker("s", cue.label, sample=cue.sample)])
    for got in (got_early, got_late, by_sample):
        assert [(d.trigger, d.window_end, d.cue_label) for d in got] == [
            ("cue", cue.sample + 125 + WIN, cue.label)]
    assert got_early[0].probabilities == by_sample[0].probabilities == got_late[0].probabilities


def test_marker_later_than_history_is_reported(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("cue",), history_s=0.5))
    feed(engine, chunks_of(rec))
    assert engine.process(Batch([], [Marker("s", "left", sample=rec.cues[0].sample)])) == []
    lost = [e for e in engine.events.drain() if e.kind == "cue_lost"]
    assert lost and lost[0].reason == "late"


def test_lazy_streams_stats_and_close(pipe, rec):
    engine = Engine(pipe, "1")
    engine.process(Batch(chunks_of(rec, "x", stop=100)[:1] + chunks_of(rec, "y", stop=100)[:1], []))
    assert engine.stats()["streams"] == 2 and engine.stats()["samples_in"] == 100
    engine.close_stream("x")
    assert set(engine.streams) == {"y"}
    engine.process(Batch(chunks_of(rec, "z", stop=50), []))
    assert engine.streams["z"].slot == 0  # slot reused


def test_config_is_checked():
    with pytest.raises(ValueError, match="triggers"):
        EngineConfig(triggers=("tick",))
    with pytest.raises(ValueError, match="on_gap"):
        EngineConfig(on_gap="explode")
    with pytest.raises(ValueError, match="hop_s"):
        EngineConfig(hop_s=0)


def test_flat_stream_is_skipped_without_spoiling_the_batch(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",)))
    flat = np.zeros_like(rec.data)
    decisions = []
    for a in range(0, 1500, 50):
        decisions += engine.process(Batch([Chunk("flat", flat[:, a:a + 50], None, a, 0.0),
                                           Chunk("live", rec.data[:, a:a + 50], None, a, 0.0)], []))
    assert decisions and {d.stream_id for d in decisions} == {"live"}
    skipped = [e for e in engine.events.drain() if e.kind == "skipped"]
    assert skipped and {e.stream_id for e in skipped} == {"flat"} and skipped[0].reason == "flat"


def test_continue_policy_filters_across_a_gap(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("hop",), on_gap="continue"))
    chunks = chunks_of(rec, size=50)
    decisions = feed(engine, chunks[:30] + chunks[32:])
    assert [g.size for g in engine.events.drain() if g.kind == "gap"] == [100]
    ends = [d.window_end for d in decisions]
    # Indices count received samples: the stream is 100 samples shorter, windows run through the gap.
    assert engine.streams["s"].index == rec.n_samples - 100
    assert [e for e in ends if 1500 < e < 1500 + WIN]


def test_hop_that_does_not_divide_the_window_and_timestamps(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(hop_s=0.3, triggers=("hop",)))
    decisions = feed(engine, chunks_of(rec, size=33))
    ends = [d.window_end for d in decisions]
    assert ends[:3] == [750, 825, 900] and np.all(np.diff(ends) == 75)
    assert all(d.timestamp == pytest.approx(100.0 + (d.window_end - 1) / 250.0) for d in decisions)


def test_malformed_marker_is_reported_not_raised(pipe, rec):
    engine = Engine(pipe, "1")
    assert engine.process(Batch(chunks_of(rec, stop=50), [Marker("s", "left", sample="soon")])) == []
    errors = [e for e in engine.events.drain() if e.kind == "error"]
    assert errors and errors[0].reason == "ValueError"
    assert engine.stats()["samples_in"] == 50


def test_fast_built_decisions_equal_regular_records(pipe, rec):
    from dataclasses import fields

    from bcistream.realtime.records import Decision

    decisions = run_all(Engine(pipe, "1"), MemorySource(rec, chunk_size=50))
    names = {f.name for f in fields(Decision)}
    for d in decisions[:5]:
        assert set(vars(d)) == names
        again = Decision(**d.to_dict())
        assert again == d and again.to_json() == d.to_json()
        assert Decision.from_dict(json.loads(d.to_json())) == d


@pytest.mark.parametrize("finish", ["flush_pending", "close_stream"])
@pytest.mark.parametrize("by", ["sample", "timestamp"])
def test_cue_pending_when_the_stream_ends_is_reported_lost(pipe, rec, finish, by):
    # Two cues; the second one's window [cue + 125, + WIN) needs samples past the last chunk.
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("cue",)))
    first, last = rec.cues[0].sample, rec.n_samples - WIN // 2
    markers = [Marker("s", "left", sample=s) if by == "sample" else
               Marker("s", "left", timestamp=100.0 + s / 250.0) for s in (first, last)]
    got = feed(engine, chunks_of(rec), markers)
    assert [d.window_end for d in got] == [first + 125 + WIN]
    engine.events.drain()
    assert getattr(engine, finish)(*(("s",) if finish == "close_stream" else ())) == 1
    lost = [e for e in engine.events.drain() if e.kind == "cue_lost"]
    assert [(e.reason, e.stream_id) for e in lost] == [("stream-ended", "s")]
    assert "ended" in lost[0].detail
    assert engine.stats()["cues_lost"] == 1
    # Reported once: nothing is left pending.
    assert engine.flush_pending() == 0 and engine.close_stream("s") == 0


def test_marker_without_position_is_counted_lost(pipe, rec):
    engine = Engine(pipe, "1", config=EngineConfig(triggers=("cue",)))
    feed(engine, chunks_of(rec, stop=100), [Marker("s", "left")])
    assert [e.reason for e in engine.events.drain() if e.kind == "cue_lost"] == ["no-position"]
    assert engine.stats()["cues_lost"] == 1
