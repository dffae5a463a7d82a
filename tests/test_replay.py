"""Replay: pacing on the monotonic clock, cues, loops, LSL metadata, Kafka at max speed."""

from __future__ import annotations

import re
import threading
import time
import uuid

import numpy as np
import pytest

from bcistream.cli import main
from bcistream.data.loader import load_recording
from bcistream.data.recording import Cue, Recording
from bcistream.replay import LslTarget, Pacer, replay
from bcistream.streamer.wire import decode_chunk, decode_marker
from tests.helpers import wait_until
from tests.kafka_broker import unique


class _Memory:
    def __init__(self):
        self.sent, self.cues, self.times = [], [], []

    def clock(self):
        return 100.0

    def send(self, data, seq, timestamp):
        self.sent.append((data.copy(), seq, timestamp))
        self.times.append(time.monotonic())

    def cue(self, sample, timestamp, label):
        self.cues.append((sample, timestamp, label, len(self.sent)))

    def flush(self):
        pass

    def close(self):
        pass


CUES = (Cue(100, "left"), Cue(555, None), Cue(999, "feet", rejected=True))


def _recording(n=1000, cues=CUES):
    from bcistream.data.profiles import load_profile

    data = np.arange(22 * n, dtype=float).reshape(22, n)
    return Recording(data, load_profile(None), tuple(c for c in cues if c.sample < n), "memory")


def test_replay_sends_everything_with_cues_before_their_chunk():
    rec = _recording()
    target = _Memory()
    stats = replay(rec, target, speed=None, chunk=64)
    data = np.concatenate([d for d, _, _ in target.sent], axis=1)
    np.testing.assert_array_equal(data, rec.data)
    assert [s for _, s, _ in target.sent] == list(range(0, 1000, 64))
    assert target.sent[1][2] == pytest.approx(100.0 + 64 / 250)
    # each cue goes out before the chunk that holds its sample, labels as they are (None = unknown)
    assert [(s, lab, before) for s, _, lab, before in target.cues] == [(100, "left", 1), (555, None, 8),
                                                                        (999, "feet", 15)]
    assert stats.samples == 1000 and stats.cues == 3 and stats.chunks == 16


def test_loop_keeps_counting_samples_and_stops_on_request():
    rec = _recording(n=100, cues=(Cue(60, "tongue"),))
    target, stop = _Memory(), threading.Event()

    def on_chunk(stats):
        if stats.chunks >= 6:
            stop.set()

    stats = replay(rec, target, speed=None, chunk=50, loop=True, stop=stop, on_chunk=on_chunk)
    assert [s for _, s, _ in target.sent] == [0, 50, 100, 150, 200, 250]
    assert target.sent[2][2] == pytest.approx(100.0 + 100 / 250)  # time keeps going
    assert [c[0] for c in target.cues] == [60, 160, 260]  # the cue again in every pass
    assert stats.loops == 3


class _FakeClock:
    """A clock that moves only when slept on (or when a slow send pushes it): no wall-clock waits."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_pacing_has_no_drift_on_an_injected_clock():
    rec = _recording(n=250 * 4)
    clock = _FakeClock()
    target = _Memory()
    sends = []

    def send(data, seq, timestamp):
        sends.append(clock())
        if seq == 250:  # one slow send (a stalled transport): 100 ms late
            clock.now += 0.1

    target.send = send
    pacer = Pacer(25 / 250 / 4.0, clock=clock, sleep=clock.sleep, spin_s=0.0)
    stats = replay(rec, target, speed=4.0, chunk=25, pacer=pacer)  # a chunk every 25 ms
    due = (np.arange(40) + 1) * 0.025
    sent = np.array(sends)
    # Release times follow the absolute schedule: on time before the stall, the chunks it delayed
    # go at once, and the ones after are on schedule again (no accumulated drift).
    np.testing.assert_allclose(sent[:11], due[:11], atol=1e-9)
    assert (sent[11:14] > due[11:14]).all()
    np.testing.assert_allclose(sent[14:], due[14:], atol=1e-9)
    assert len(stats.lateness) == 40 and max(stats.lateness) == pytest.approx(0.075)
    assert not stats.behind() and stats.pace() == "4.0x of 4x asked"  # a stall is not a pace
    with pytest.raises(ValueError, match="speed"):
        replay(rec, target, speed=0.0)
    with pytest.raises(ValueError, match="chunk"):
        replay(rec, target, chunk=0)


def test_a_paced_replay_does_not_wait_for_acks_per_chunk():
    """Waiting for the broker's acks after every chunk (a ~1-5 ms round trip) held a paced Kafka
    replay to 51x when 200x was asked: the acks are awaited every ``flush_every`` chunks, paced or
    not. On an injected clock, a flush costs 5 ms and a chunk is due every 2.5 ms."""
    rec = _recording(n=250 * 8)
    clock = _FakeClock()
    target = _Memory()
    flushes = []

    def flush():
        flushes.append(clock())
        clock.now += 0.005

    target.flush = flush
    stats = replay(rec, target, speed=40.0, chunk=25, flush_every=64,
                   pacer=Pacer(25 / 250 / 40.0, clock=clock, sleep=clock.sleep, spin_s=0.0))
    assert stats.chunks == 80
    assert len(flushes) <= 80 // 64 + 2, "a flush per chunk"
    assert not stats.behind(), stats.pace()


def test_stats_say_when_the_replay_cannot_keep_the_pace_asked():
    rec = _recording(n=250 * 8)
    clock = _FakeClock()
    target = _Memory()
    on_pace = replay(rec, target, speed=4.0, chunk=25,
                     pacer=Pacer(25 / 250 / 4.0, clock=clock, sleep=clock.sleep, spin_s=0.0))
    assert not on_pace.behind() and on_pace.achieved_speed() == pytest.approx(4.0)
    assert on_pace.pace() == "4.0x of 4x asked"

    clock = _FakeClock()
    target.send = lambda data, seq, timestamp: setattr(clock, "now", clock.now + 0.05)  # 2x the period
    seen = []
    slow = replay(rec, target, speed=4.0, chunk=25, on_chunk=lambda st: seen.append(st.behind()),
                  pacer=Pacer(25 / 250 / 4.0, clock=clock, sleep=clock.sleep, spin_s=0.0))
    # Chunk k leaves at 25 + 50 k ms, k x 25 ms late: 80 chunks (8 s) in 4.025 s, 2x of the 4x asked.
    assert slow.behind() and slow.pace() == "2.0x of 4x asked"
    assert slow.max_late_s == pytest.approx(79 * 0.025) and slow.wall_s == pytest.approx(4.025)
    # Known while running, from the first chunk that left >= 0.5 s late (chunk 20).
    assert seen.index(True) == 20 and all(seen[20:])
    unpaced = replay(rec, _Memory(), speed=None, chunk=25)
    assert not unpaced.behind() and unpaced.pace().endswith("x, as fast as possible")


class _SlowLsl(_Memory):
    """An LSL target stand-in whose sends take ``cost`` seconds (a transport too slow for the pace)."""

    cost = 0.0

    def __init__(self, name, rec, chunk=10):
        super().__init__()

    def send(self, data, seq, timestamp):
        time.sleep(self.cost)


@pytest.mark.parametrize("cost", [0.003, 0.0])
def test_replay_command_says_when_it_falls_behind(monkeypatch, capsys, cost):
    """30x asked, ~20x reached used to end in "pacing jitter p99 42029 ms" and nothing more."""
    import bcistream.data.loader
    import bcistream.replay

    monkeypatch.setattr(bcistream.data.loader, "load_recording", lambda path, profile: _recording(n=5000))
    monkeypatch.setattr(bcistream.replay, "LslTarget", type("Slow", (_SlowLsl,), {"cost": cost}))
    assert main(["replay", "rec.fif", "--speed", "100", "--chunk", "10"]) == 0
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    if cost:  # 3 ms per 0.4 ms chunk: ~13x of 100x
        (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
        assert re.match(r"warning: replay is falling behind: \d+\.\dx of 100x asked \(chunks leave "
                        r"\d\.\d s late\); lower --speed", warning), warning
        assert err.index(warning) < err.index(last)  # said while running, before the end
        achieved = float(re.search(r"\((\d+\.\d)x of 100x asked\)", last).group(1))
        assert achieved < 50 and "fell behind the pace asked" in last and "jitter" not in last, last
    else:
        assert "warning" not in err and "x of 100x asked); pacing jitter p99" in last, err


def test_pacer_schedule_is_absolute():
    now = [0.0]
    p = Pacer(0.1, clock=lambda: now[0])
    assert [p.due(k) for k in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    now[0] = 0.35  # late: chunk 2 goes at once, the schedule does not shift
    assert p.wait(2) == pytest.approx(0.05)
    assert p.due(3) == pytest.approx(0.4)


def test_bad_speed_is_one_line_error(fixtures_dir, capsys):
    assert main(["replay", str(fixtures_dir / "A99T-synthetic.gdf"), "--speed", "fast"]) == 2
    assert "--speed: must be a number > 0 or 'max'" in capsys.readouterr().err


@pytest.mark.slow
def test_lsl_outlet_metadata(fixtures_dir):
    import pylsl

    rec = load_recording(fixtures_dir / "A99T-synthetic.gdf")
    name = "meta-" + uuid.uuid4().hex[:6]
    target = LslTarget(name, rec)
    (info,) = pylsl.resolve_byprop("name", name, 1, 5)
    inlet = pylsl.StreamInlet(info)
    full = inlet.info(5)
    assert full.type() == "EEG" and full.channel_count() == 22 and full.nominal_srate() == 250
    assert full.get_channel_labels() == list(rec.profile.channels)
    assert set(full.get_channel_units()) == {"microvolts"}
    assert set(full.get_channel_types()) == {"EEG"}
    assert pylsl.resolve_byprop("name", name + "-markers", 1, 5)[0].type() == "Markers"
    target.close()


@pytest.mark.slow
def test_replay_to_kafka_at_max_speed(fixtures_dir, kafka_broker):
    from kafka import KafkaConsumer

    raw, markers = unique("raw"), unique("markers")
    kafka_broker.create_topics({raw: 1, markers: 1})
    path = fixtures_dir / "A99T-synthetic.gdf"
    assert main(["replay", str(path), "--to", "kafka", "--name", "a99", "--topic", raw, "--markers-topic",
                 markers, "--bootstrap", kafka_broker.bootstrap, "--speed", "max", "--chunk", "25"]) == 0
    rec = load_recording(path)
    consumer = KafkaConsumer(raw, markers, bootstrap_servers=kafka_broker.bootstrap,
                             auto_offset_reset="earliest", fetch_max_wait_ms=5)
    got = {raw: [], markers: []}

    def fetched():
        for records in consumer.poll(100).values():
            for r in records:
                got[r.topic].append(r)
        return len(got[raw]) >= 600 and len(got[markers]) >= 6

    wait_until(fetched, what="replayed records")
    consumer.close()
    chunks = [decode_chunk(r.value) for r in got[raw]]
    data = np.concatenate([c.data for c in sorted(chunks, key=lambda c: c.seq)], axis=1)
    np.testing.assert_allclose(data, rec.data.astype(np.float32), equal_nan=True)
    cues = [decode_marker(r.value) for r in got[markers]]
    assert [(s, lab) for _, s, lab in cues] == [(c.sample, c.label) for c in rec.cues]
    assert {r.key for r in got[raw]} == {b"a99"}
