"""No Kafka broker at --bootstrap: one `error: ...` line and exit 2, not an internal error."""

from __future__ import annotations

import socket

import pytest

from bcistream.cli import _kafka_unreachable, main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: nothing listens there


@pytest.mark.slow
def test_replay_to_an_absent_broker_is_one_error_line(tmp_path, capsys):
    from bcistream.data.synth import make_small_dataset

    make_small_dataset(tmp_path / "d", n_trials_per_class=6)
    port = _closed_port()
    rc = main(["replay", str(tmp_path / "d" / "A01E_raw.fif"), "--to", "kafka", "--speed", "max",
               "--bootstrap", f"127.0.0.1:{port}", "--kafka-opt", "bootstrap_timeout_ms=1500"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert last.startswith(f"error: cannot reach a Kafka broker at 127.0.0.1:{port}: is it running?"), last


def test_only_bootstrap_failures_are_named_unreachable():
    from kafka.errors import KafkaTimeoutError

    msg = _kafka_unreachable(KafkaTimeoutError("Unable to bootstrap from 10.0.0.1:9092"))
    assert msg.startswith("cannot reach a Kafka broker at 10.0.0.1:9092:")
    assert _kafka_unreachable(KafkaTimeoutError("Failed to update metadata after 60.0 secs.")) is None
    assert _kafka_unreachable(RuntimeError("Unable to bootstrap from x")) is None
