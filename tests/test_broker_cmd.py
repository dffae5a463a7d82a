"""`bcistream broker` (README, Kafka): the bundled broker in the foreground, stopped by Ctrl-C."""

from __future__ import annotations

import pytest

from bcistream.cli import main
from tests.helpers import CliProcess, wait_until
from tests.kafka_broker import free_port, unique

pytestmark = pytest.mark.slow


@pytest.mark.timeout(120)
def test_broker_serves_kafka_until_ctrl_c(tmp_path):
    import numpy as np
    from kafka import KafkaConsumer

    from bcistream.streamer.kafka_sink import KafkaChunkProducer

    port = free_port()
    with CliProcess(["broker", "--port", str(port)], str(tmp_path / "home")) as broker:
        broker.wait_for(lambda: "Ctrl-C stops it" in broker.out, timeout=60, what="the broker's ready line")
        assert f"at 127.0.0.1:{port}" in broker.out
        topic = unique("cmd")
        prod = KafkaChunkProducer(f"127.0.0.1:{port}", topic, f"{topic}.m")
        prod.send_chunk("s", np.zeros((22, 25), dtype=np.float32), 250.0, 0, 0.0)
        prod.close()
        consumer = KafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{port}", auto_offset_reset="earliest")
        try:
            got = wait_until(lambda: consumer.poll(timeout_ms=500), timeout=30, what="the message back")
        finally:
            consumer.close()
        assert sum(len(v) for v in got.values()) == 1
        code = broker.interrupt(timeout=30)
    lines = broker.lines
    assert code == 0 and "broker stopped" in "".join(lines), "".join(lines)
    assert "Traceback" not in "".join(lines)


def test_broker_on_a_port_in_use_is_one_line(tmp_path, monkeypatch, capsys):
    import socket

    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["broker", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --port {port}: 127.0.0.1:{port} is already in use")
    assert err.count("\n") == 1
