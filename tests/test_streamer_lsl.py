"""LSL source and decision sink against real outlets/inlets on loopback (conftest's LSL config)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from bcistream.data.profiles import load_profile
from bcistream.errors import ProfileError
from bcistream.realtime.records import Decision
from bcistream.realtime.streams import StreamState
from bcistream.realtime.tracker import Placement, StreamTracker
from bcistream.streamer.lsl_checks import channel_order
from bcistream.streamer.lsl_resolve import StreamNotFoundError, resolve_one
from bcistream.streamer.lsl_sink import LslDecisionSink
from bcistream.streamer.lsl_source import MARKER_SUFFIX, LslSource
from tests.helpers import wait_until

PROFILE = load_profile(None)


def _outlet(name, n_ch=22, sfreq=250.0, labels=None, units="microvolts", source_id=None):
    import pylsl

    info = pylsl.StreamInfo(name, "EEG", n_ch, sfreq, pylsl.cf_float32, source_id or name)
    if labels is not None:
        info.set_channel_labels(list(labels))
        info.set_channel_units(units)
    return pylsl.StreamOutlet(info)


def _collect(src, n_samples, timeout=20.0):
    chunks, markers = [], []

    def check():
        b = src.poll(0.02)
        chunks.extend(b.chunks)
        markers.extend(b.markers)
        return sum(c.data.shape[1] for c in chunks) >= n_samples

    wait_until(check, timeout=timeout, what=f"{n_samples} samples")
    return chunks, markers


def test_channel_order_rules():
    chans = list(PROFILE.channels)
    assert channel_order("s", 22, 250.0, chans, PROFILE) is None
    assert channel_order("s", 22, 250.0, None, PROFILE) is None
    shuffled = chans[::-1] + ["EOG-left"]
    order = channel_order("s", 23, 250.0, shuffled, PROFILE)
    assert [shuffled[i] for i in order] == chans
    with pytest.raises(ProfileError, match="8 channels but the model's profile 'bci-iv-2a' expects 22"):
        channel_order("s", 8, 250.0, None, PROFILE)
    with pytest.raises(ProfileError, match="500 Hz"):
        channel_order("s", 22, 500.0, chans, PROFILE)
    with pytest.raises(ProfileError, match="lacks channel"):
        channel_order("s", 22, 250.0, chans[:-1] + ["X1"], PROFILE)


@pytest.mark.slow
def test_resolve_error_lists_what_was_found():
    keep = _outlet("visible-" + uuid.uuid4().hex[:6])
    with pytest.raises(StreamNotFoundError, match=r"no LSL stream with name='nope-\w+'.*visible-"):
        resolve_one("nope-" + uuid.uuid4().hex[:6], timeout=0.5)
    del keep


@pytest.mark.slow
def test_mismatched_channel_count_is_refused():
    name = "eight-" + uuid.uuid4().hex[:6]
    keep = _outlet(name, n_ch=8)
    with pytest.raises(ProfileError, match="has 8 channels but the model's profile 'bci-iv-2a' expects 22"):
        LslSource([name], PROFILE, markers=False, resolve_timeout=5)
    del keep


@pytest.mark.slow
def test_reorders_by_label_scales_units_and_places_cues():
    import pylsl

    name = "shuf-" + uuid.uuid4().hex[:6]
    labels = list(PROFILE.channels)[::-1]
    outlet = _outlet(name, labels=labels, units="microvolts")
    minfo = pylsl.StreamInfo(name + MARKER_SUFFIX, "Markers", 1, 0, pylsl.cf_string, name + "-m")
    mout = pylsl.StreamOutlet(minfo)
    src = LslSource([name], PROFILE, markers=True, resolve_timeout=5)
    try:
        wait_until(lambda: outlet.have_consumers() and mout.have_consumers(), what="inlets connected")
        t0 = pylsl.local_clock()
        block = np.arange(100 * 22, dtype=np.float32).reshape(100, 22)  # sample-major, reversed labels
        outlet.push_chunk(block[:50], t0 + 49 / 250, True)
        mout.push_sample(["right"], t0 + 70 / 250, True)
        outlet.push_chunk(block[50:], t0 + 99 / 250, True)
        chunks, markers = _collect(src, 100)
        wait_until(lambda: markers or markers.extend(src.poll(0.02).markers), what="cue marker")
        data = np.concatenate([c.data for c in chunks], axis=1)
        np.testing.assert_allclose(data, block[:, ::-1].T * 1e-6, rtol=1e-6)
        # LSL has no sequence numbers: the engine's tracker counts samples; units were declared.
        assert all(c.seq is None and c.units_declared for c in chunks)
        (cue,) = markers  # passed on as sent, placed by the engine on the de-jittered timestamps
        assert (cue.stream_id, cue.label, cue.sample) == (name, "right", None)
        assert cue.timestamp == pytest.approx(t0 + 70 / 250, abs=1e-3)
    finally:
        src.close()


@pytest.mark.slow
def test_outlet_vanishes_and_returns_gap_reported():
    import pylsl

    name = "flaky-" + uuid.uuid4().hex[:6]
    sid = "flaky-source-" + name
    outlet = _outlet(name, source_id=sid)
    src = LslSource([name], PROFILE, markers=False, resolve_timeout=5)
    try:
        wait_until(outlet.have_consumers, what="inlet connected")
        t0 = pylsl.local_clock()
        outlet.push_chunk(np.zeros((50, 22), np.float32), t0 + 49 / 250, True)
        first, _ = _collect(src, 50)
        del outlet  # the amplifier goes away ...
        for _ in range(5):
            assert not src.poll(0.02).chunks
        outlet = _outlet(name, source_id=sid)  # ... and comes back with the same source id
        wait_until(outlet.have_consumers, timeout=30, what="inlet to recover")
        outlet.push_chunk(np.ones((50, 22), np.float32), t0 + 199 / 250, True)  # 100 samples later
        chunks, _ = _collect(src, 50, timeout=30)
        # The engine's tracker reads the 100 missing samples from the timestamps.
        tracker, st = StreamTracker(250.0), StreamState("s", 0)
        st.fresh, st.index, st.last_ts = False, 50, first[-1].timestamps[-1]
        assert tracker.place(st, chunks[0]) == Placement(0, 150, 100)
    finally:
        src.close()


@pytest.mark.slow
def test_decision_sink_publishes_json_markers_with_source_timestamps():
    import pylsl

    name = "dec-" + uuid.uuid4().hex[:6]
    sink = LslDecisionSink(name)
    inlet = pylsl.StreamInlet(resolve_one(name, 5))
    inlet.open_stream(5)
    wait_until(sink.outlet.have_consumers, what="consumer")
    d = Decision("s", "cue", 900, pylsl.local_clock() - 1.0, "feet", {"feet": 0.9, "left": 0.1}, "3")
    sink.write([d])
    sample, ts = inlet.pull_sample(timeout=5)
    assert Decision.from_dict(json.loads(sample[0])) == d
    assert ts == pytest.approx(d.timestamp, abs=1e-6)
    sink.close()


class _FakeInlet:
    """Stands in for a pylsl inlet: returns prepared (samples, timestamps) chunks."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def pull_chunk(self, timeout, max_samples, dest_obj, as_numpy):
        if not self.chunks:
            return dest_obj[:0], np.empty(0)
        data, ts = self.chunks.pop(0)
        dest_obj[: len(ts)] = data
        return dest_obj[: len(ts)], np.asarray(ts, dtype=float)

    def time_correction(self, timeout):
        return 0.0


def _fake_source(chunks, skip_before=None):
    import pylsl

    from bcistream.streamer.lsl_source import LslSourceStats, _Stream

    src = LslSource.__new__(LslSource)
    src._pylsl, src.profile, src.stats = pylsl, PROFILE, LslSourceStats()
    src.recheck_clock_s, src._skip_backlog = 5.0, False
    src._gap_per_stream, src._last_pass = 0.0, 0.0
    st = _Stream("s", _FakeInlet(chunks), None, 250.0, 22, 64)
    st.skip_before = skip_before
    src._streams, src._marker_inlets = [st], []
    return src


def _block(first, n):
    return np.full((n, 22), first, np.float32), 100.0 + (first + np.arange(n)) / 250.0


def test_every_sample_passes_the_source_after_the_backlog():
    """The source drops nothing but the backlog: no seq, no timestamp-based dropping (the tracker's job)."""
    chunks = [_block(0, 10), _block(10, 10), _block(15, 10),  # 15..19 re-sent after a reconnect
              _block(55, 10),  # 30 samples missing (0.12 s > tolerance)
              (np.ones((9, 22), np.float32), np.full(9, 100.3))]  # a burst with equal timestamps
    src = _fake_source(chunks, skip_before=100.0 + 3 / 250)  # backlog: samples 0..2
    got = []
    for _ in range(6):
        got.extend(src.poll(0.0).chunks)
    assert [c.data.shape[1] for c in got] == [7, 10, 10, 10, 9] and {c.seq for c in got} == {None}
    assert src.stats.samples == 46


class _Amplifier:
    """An outlet pushing 10-sample chunks in real time from a thread, stamped at push (a bridge)."""

    def __init__(self, name: str, source_id: str) -> None:
        import threading

        self.outlet = _outlet(name, source_id=source_id)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import time

        import pylsl

        rng = np.random.default_rng(0)
        k, start = 0, time.monotonic()
        while not self.stop.is_set():
            left = start + (k + 1) * 0.04 - time.monotonic()
            if left > 0:
                self.stop.wait(left)
            self.outlet.push_chunk((rng.standard_normal((10, 22)) * 1e-5).astype(np.float32),
                                   pylsl.local_clock(), True)
            k += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        del self.outlet  # the outlet's sockets close: the inlet sees the stream vanish


@pytest.mark.slow
def test_outlet_restart_is_reported_and_decoded_again(stream_setup):
    """An amplifier that vanishes and comes back: a gap event, then its samples are decoded again.

    How fast (seconds from the new outlet to samples in the engine) is `make bench`'s
    ``lsl_reconnect_s``; here only that it happens, and that it is reported.
    """
    from bcistream.realtime.engine import Engine, EngineConfig

    name = "restart-" + uuid.uuid4().hex[:6]
    sid = "restart-source-" + name
    amp = _Amplifier(name, sid)
    src = LslSource([name], PROFILE, markers=False, resolve_timeout=5, skip_backlog=True)
    engine = Engine(stream_setup.pipeline, "1", EngineConfig(hop_s=0.25, triggers=("hop",)))
    decisions = []

    def step():
        decisions.extend(engine.process(src.poll(0.02)))

    try:
        wait_until(lambda: step() or len(decisions) >= 2, timeout=30, what="decisions before restart")
        amp.close()
        before = engine.stats()["samples_in"]
        for _ in range(10):
            step()
        events = engine.events.drain()
        assert engine.stats()["samples_in"] - before <= 20, "samples while the outlet is away"
        amp = _Amplifier(name, sid)  # the same source id: the inlet recovers
        n_before = len(decisions)
        wait_until(lambda: step() or len(decisions) >= n_before + 2, timeout=30,
                   what="decisions after the restart")
        events += engine.events.drain()
        gaps = [e for e in events if e.kind in ("gap", "restart") and e.stream_id == name]
        assert gaps and gaps[0].size > 0, f"the outage was not reported: {events}"
        assert engine.stats()["gaps"] + engine.stats()["restarts"] >= 1
        assert decisions[-1].timestamp > decisions[n_before - 1].timestamp
    finally:
        amp.close()
        src.close()
