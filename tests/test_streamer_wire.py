"""The Kafka wire format: round trips, zero-copy decoding, and a reason for every malformed message."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bcistream.errors import BcistreamError
from bcistream.streamer.kafka_config import consumer_config, parse_kafka_opts, producer_config
from bcistream.streamer.wire import (
    HEADER,
    HEADER_V1,
    WireError,
    decode_chunk,
    decode_marker,
    decode_marker_full,
    encode_chunk,
    encode_marker,
    new_session,
)


@given(n_ch=st.integers(1, 30), n=st.integers(1, 40), seq=st.integers(0, 2**40),
       ts=st.floats(-1e9, 1e9), dtype=st.sampled_from(["<f4", "<f8"]))
@settings(max_examples=60, deadline=None)
def test_round_trip(n_ch, n, seq, ts, dtype):
    data = np.random.default_rng(seq % 1000).standard_normal((n_ch, n))
    session = new_session()
    wc = decode_chunk(encode_chunk(data, 250.0, seq, ts, dtype=dtype, session=session))
    assert wc.data.shape == (n_ch, n)
    np.testing.assert_array_equal(wc.data, data.astype(dtype))
    assert (wc.seq, wc.timestamp, wc.sfreq) == (seq, ts, 250.0)
    assert wc.session == f"{session:016x}"
    np.testing.assert_allclose(wc.timestamps(), ts + np.arange(n) / 250.0)


def test_decode_is_zero_copy():
    msg = bytearray(encode_chunk(np.ones((22, 25)), 250.0, 7, 1.5))
    wc = decode_chunk(msg)
    msg[HEADER.size:HEADER.size + 4] = np.float32(42).tobytes()
    assert wc.data[0, 0] == 42  # a view on the message buffer, not a copy


def _header(**kw):
    fields = dict(magic=b"BCIS", version=1, code=1, n_ch=2, n=3, sfreq=250.0, seq=0, ts=0.0)
    fields.update(kw)
    return HEADER_V1.pack(*fields.values())


def test_version_1_messages_still_decode_without_a_session():
    data = np.arange(6, dtype="<f4").reshape(2, 3)
    wc = decode_chunk(_header(seq=9, ts=2.5) + data.tobytes())
    np.testing.assert_array_equal(wc.data, data)
    assert (wc.seq, wc.timestamp, wc.session) == (9, 2.5, None)
    # Version 2 without a session (0) decodes to None too; sessions differ per producer run.
    assert decode_chunk(encode_chunk(data, 250.0, 0, 0.0)).session is None
    assert len({new_session() for _ in range(100)}) == 100


@pytest.mark.parametrize(("message", "reason"), [
    (None, "tombstone"),
    (b"", "too short"),
    (b"BCIS\x01", "too short"),
    (HEADER.pack(b"BCIS", 2, 1, 2, 3, 250.0, 0, 0.0, 1)[:40], "too short"),
    (_header(magic=b"XXXX") + bytes(24), "bad magic"),
    (_header(version=9) + bytes(24), "unsupported wire version 9"),
    (_header(code=7) + bytes(24), "unknown dtype code 7"),
    (_header(n_ch=0) + bytes(24), "bad shape"),
    (_header(sfreq=float("nan")) + bytes(24), "bad sampling rate"),
    (_header(sfreq=-250.0) + bytes(24), "bad sampling rate"),
    (_header(ts=float("inf")) + bytes(24), "bad timestamp"),
    (_header() + bytes(23), "payload length"),
    (_header() + bytes(25), "payload length"),
    (b"garbage that is long enough to fill a header but is not one", "bad magic"),
])
def test_malformed_chunks_have_a_reason(message, reason):
    with pytest.raises(WireError, match=reason) as info:
        decode_chunk(message)
    assert reason in info.value.reason


@given(st.binary(max_size=200))
@settings(max_examples=200, deadline=None)
def test_random_bytes_never_crash_the_decoder(blob):
    try:
        decode_chunk(blob)
    except WireError as exc:
        assert exc.reason


def test_markers_round_trip_and_reject():
    assert decode_marker(encode_marker("s1", 1234, "left")) == ("s1", 1234, "left")
    assert decode_marker(encode_marker("s1", 5, None)) == ("s1", 5, None)
    # Labels pass as sent (codes too); the engine maps them through the model profile.
    assert decode_marker(b'{"sample": 3, "label": "unknown"}', key=b"k") == ("k", 3, "unknown")
    assert decode_marker(encode_marker("s1", 5, 770)) == ("s1", 5, 770)
    got = decode_marker_full(encode_marker("s1", 5, "769", session=255))
    assert got == ("s1", 5, "769", "00000000000000ff")
    for bad, reason in [(b"nope", "not JSON"), (b"[1]", "JSON object"), (b'{"sample": 1}', "stream_id"),
                        (b'{"stream_id": "a", "sample": -1}', "sample"),
                        (b'{"stream_id": "a", "sample": true}', "sample"),
                        (b'{"stream_id": "a", "sample": 1, "label": [3]}', "label"),
                        (b'{"stream_id": "a", "sample": 1, "label": true}', "label")]:
        with pytest.raises(WireError, match=reason):
            decode_marker(bad)


def test_encode_refuses_bad_input():
    with pytest.raises(ValueError, match="shape"):
        encode_chunk(np.ones(5), 250.0, 0, 0.0)
    with pytest.raises(ValueError, match="dtype"):
        encode_chunk(np.ones((2, 2)), 250.0, 0, 0.0, dtype="<i2")
    assert struct.calcsize("<4sBBHIdQd") == HEADER_V1.size == 36
    assert struct.calcsize("<4sBBHIdQdQ") == HEADER.size == 44


def test_kafka_options_parse_and_route():
    opts = parse_kafka_opts(["security_protocol=SASL_SSL", "sasl-mechanism=PLAIN", "fetch_max_wait_ms=2",
                             "producer.linger_ms=3", "consumer.check_crcs=false"])
    assert opts["fetch_max_wait_ms"] == 2 and opts["consumer.check_crcs"] is False
    c = consumer_config("b:1", opts, group_id="g")
    p = producer_config("b:1", opts)
    assert c["security_protocol"] == p["security_protocol"] == "SASL_SSL"
    assert c["sasl_mechanism"] == "PLAIN" and c["fetch_max_wait_ms"] == 2 and c["check_crcs"] is False
    assert "fetch_max_wait_ms" not in p and p["linger_ms"] == 3 and "linger_ms" not in c
    assert c["enable_auto_commit"] is False and c["group_id"] == "g"
    with pytest.raises(BcistreamError, match="key=value"):
        parse_kafka_opts(["novalue"])
    with pytest.raises(BcistreamError, match="unknown Kafka"):
        consumer_config("b:1", {"fetch_max_wiat_ms": 1})
