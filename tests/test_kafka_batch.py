"""The batch decoder of Kafka chunk messages equals message-by-message decoding, or declines."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from bcistream.streamer.kafka_batch import decode_batch
from bcistream.streamer.wire import decode_chunk, encode_chunk

Rec = namedtuple("Rec", "key value offset headers")


def _records(n_streams=3, n_chunks=6, n_ch=22, n_s=25, session=7):
    rng = np.random.default_rng(0)
    recs, off = [], 0
    for k in range(n_chunks):
        for s in range(n_streams):
            data = rng.standard_normal((n_ch, n_s)).astype(np.float32)
            ts = 100.0 + k * n_s / 250 + rng.uniform(0, 1e-3)  # each message its own jittered stamp
            value = encode_chunk(data, 250.0, k * n_s, ts, session=session)
            recs.append(Rec(f"s{s}".encode(), value, off, []))
            off += 1
    return recs


def test_runs_equal_message_by_message_decoding():
    recs = _records()
    runs = decode_batch(recs, 22, 250.0)
    assert runs is not None and [r.stream_id for r in runs] == ["s0", "s1", "s2"]
    for run in runs:
        mine = [r for r in recs if r.key.decode() == run.stream_id]
        chunks = [decode_chunk(r.value) for r in mine]
        np.testing.assert_array_equal(run.data, np.concatenate([c.data for c in chunks], axis=1))
        np.testing.assert_array_equal(run.timestamps, np.concatenate([c.timestamps() for c in chunks]))
        assert (run.seq, run.session, run.n_messages) == (0, chunks[0].session, len(mine))
        assert list(run.offsets) == [r.offset for r in mine]
        assert run.n_bytes == sum(len(r.value) for r in mine)


def test_a_gap_or_new_session_splits_the_run():
    recs = _records(n_streams=1, n_chunks=10)
    zeros = np.zeros((22, 25), np.float32)
    recs[5] = recs[5]._replace(value=encode_chunk(zeros, 250.0, 500, 101.0, session=7))
    recs[8] = recs[8]._replace(value=encode_chunk(zeros, 250.0, 575, 101.3, session=9))
    runs = decode_batch(recs, 22, 250.0)
    assert [(r.seq, r.n_messages) for r in runs] == [(0, 5), (500, 1), (150, 2), (575, 1), (225, 1)]


@pytest.mark.parametrize("spoil", ["size", "magic", "units", "key", "channels", "rate", "nan-ts", "f64"])
def test_declines_what_only_the_slow_path_may_judge(spoil):
    recs = _records()
    bad = recs[4]
    if spoil == "size":
        bad = bad._replace(value=encode_chunk(np.zeros((22, 10), np.float32), 250.0, 0, 1.0))
    elif spoil == "magic":
        bad = bad._replace(value=b"XXXX" + bad.value[4:])
    elif spoil == "units":
        bad = bad._replace(headers=[("units", b"uV")])
    elif spoil == "key":
        bad = bad._replace(key=b"\xff\xfe")
    elif spoil == "channels":
        recs = [r._replace(value=encode_chunk(np.zeros((8, 25), np.float32), 250.0, 0, 1.0)) for r in recs]
    elif spoil == "rate":
        bad = bad._replace(value=encode_chunk(np.zeros((22, 25), np.float32), 500.0, 0, 1.0))
    elif spoil == "nan-ts":
        bad = bad._replace(value=encode_chunk(np.zeros((22, 25), np.float32), 250.0, 0, float("nan")))
    elif spoil == "f64":
        recs = [r._replace(value=encode_chunk(np.zeros((22, 25)), 250.0, 0, 1.0, dtype="<f8")) for r in recs]
    recs[4] = bad if spoil not in ("channels", "f64") else recs[4]
    assert decode_batch(recs, 22, 250.0) is None


def test_small_batches_go_message_by_message():
    assert decode_batch(_records(n_streams=1, n_chunks=3), 22, 250.0) is None
