"""kafka-python's reconnect errors reach the terminal once per interval, without tracebacks."""

from __future__ import annotations

import io
import logging

from bcistream.cli.log_filters import RepeatFilter


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _logged(flt: RepeatFilter):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(flt)
    return out, handler


def test_repeats_are_held_back_and_counted_and_tracebacks_dropped():
    clock = _Clock()
    flt = RepeatFilter(interval_s=30.0, clock=clock)
    out, handler = _logged(flt)
    kafka_log, ours = logging.getLogger("kafka.net.manager"), logging.getLogger("bcistream.events")
    transport = logging.getLogger("kafka.net.transport")
    for log in (kafka_log, ours, transport):
        log.addHandler(handler)
        log.propagate = False
    try:
        for i in range(5):  # a reconnect loop: same template, other arguments
            clock.t = i * 0.5
            kafka_log.error("Connection failed: %s", f"ECONNREFUSED {i}")
            ours.warning("stall (fetch): partition %d", i)  # not a client's line: never held back
        kafka_log.warning("Bootstrap not ready")
        try:
            raise ConnectionError("boom")
        except ConnectionError:
            logging.getLogger("kafka.net.transport").exception("Error receiving network data")
        clock.t = 31.0
        kafka_log.error("Connection failed: %s", "ECONNREFUSED 9")
    finally:
        for log in (kafka_log, ours, transport):
            log.removeHandler(handler)
            log.propagate = True
    lines = out.getvalue().splitlines()
    assert lines.count("ERROR kafka.net.manager: Connection failed: ECONNREFUSED 0") == 1
    assert sum("stall (fetch)" in ln for ln in lines) == 5
    assert "ERROR kafka.net.transport: Error receiving network data" in lines
    assert "Traceback" not in out.getvalue()
    assert lines[-1] == ("ERROR kafka.net.manager: Connection failed: ECONNREFUSED 9 "
                         "(and 4 more like it held back)")
    assert "WARNING kafka.net.manager: Bootstrap not ready" in lines  # another level: another kind
