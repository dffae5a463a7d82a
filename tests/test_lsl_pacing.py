"""Paced passes of the LSL source over its inlets (real outlets and inlets on loopback)."""

from __future__ import annotations

import uuid

import numpy as np
import pylsl
import pytest

from bcistream.data.profiles import load_profile
from bcistream.streamer.lsl_source import LslSource


@pytest.fixture(scope="module")
def outlets():
    tag = uuid.uuid4().hex[:6]
    names = [f"pace-{tag}-{i}" for i in range(3)]
    outs = [pylsl.StreamOutlet(pylsl.StreamInfo(n, "EEG", 22, 250.0, pylsl.cf_float32, n)) for n in names]
    yield names, outs
    outs.clear()


def test_passes_are_paced_per_inlet(outlets):
    names, _ = outlets
    slow = LslSource(names, load_profile(None), markers=False, resolve_timeout=10,
                     pass_gap_per_stream=0.01)  # 3 inlets: a pass at most every 30 ms
    fast = LslSource(names, load_profile(None), markers=False, resolve_timeout=10)
    try:
        for src in (slow, fast):
            src.poll(0.0)
            before = src.stats.polls
            assert not src.poll(0.3).chunks  # nothing pushed: waits out the timeout
            src.passes = src.stats.polls - before
        assert slow.passes <= 0.3 / 0.03 + 2
        assert fast.passes > 3 * slow.passes  # the default (5 µs per inlet) barely paces 3 inlets
    finally:
        slow.close()
        fast.close()


def test_paced_source_still_delivers_every_sample(outlets):
    names, outs = outlets
    src = LslSource(names, load_profile(None), markers=False, resolve_timeout=10,
                    pass_gap_per_stream=0.005)
    try:
        data = np.zeros((25, 22), dtype=np.float32) + 1e-5
        got = {n: 0 for n in names}
        for _ in range(8):
            for out in outs:
                out.push_chunk(data)
        deadline = 200
        while sum(got.values()) < 8 * 25 * len(names) and deadline:
            for ch in src.poll(0.05).chunks:
                got[ch.stream_id] += ch.data.shape[1]
            deadline -= 1
        assert got == {n: 200 for n in names}
    finally:
        src.close()


def test_pass_gap_must_not_be_negative(outlets):
    names, _ = outlets
    with pytest.raises(ValueError, match="pass_gap_per_stream must be >= 0"):
        LslSource(names[:1], load_profile(None), markers=False, resolve_timeout=10,
                  pass_gap_per_stream=-1.0)
