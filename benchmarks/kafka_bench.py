"""Kafka rows of the streaming benchmarks: end-to-end latency, ingest rate, and the backlog pusher.

Run from `bench_streaming.run` (engine pinned to one core; the broker and the pusher on every core).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from benchmarks.stream_common import N_CH, SFREQ, _all_cores, _child, _loop, _Null, _row, _stop, _Timed


def kafka_latency(pipe, broker, seconds: float = 60.0, fetch_wait_ms: int = 5, tag: str = "lat") -> dict:
    """One stream, 25-sample chunks sent in real time; hop 0.1 s = one chunk.

    The loop polls with ``run``'s timeout (50 ms): with kafka-python's spurious idle sleep (see
    `bcistream.streamer.kafka_health`) the timeout is what a delayed chunk waits, so the bench
    must not use a shorter one than users get.
    """
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.streamer.kafka_sink import KafkaDecisionSink
    from bcistream.streamer.kafka_source import KafkaSource

    # A marker topic as `run` has: the source's marker barrier (one end-offsets round trip per
    # second of stream time) is part of the latency.
    broker.create_topics({f"{tag}.raw": 1, f"{tag}.decisions": 1, f"{tag}.markers": 1})
    src = KafkaSource(broker.bootstrap, f"{tag}.raw", group=f"bench-{tag}", markers_topic=f"{tag}.markers",
                      n_channels=N_CH, sfreq=SFREQ,
                      kafka_config={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300,
                                    "fetch_max_wait_ms": fetch_wait_ms})
    while not src.assignment():
        src.poll(0.05)
    engine = Engine(pipe, "1", EngineConfig(hop_s=0.1, triggers=("hop",)))
    sink = _Timed(KafkaDecisionSink(broker.bootstrap, f"{tag}.decisions"), time.time)
    proc = _child("kafka-push", "--bootstrap", broker.bootstrap, "--topic", f"{tag}.raw", "--streams", "1",
                  "--chunks", str(int(seconds * SFREQ / 25) + 20), "--realtime")
    try:
        _loop(engine, src, [sink], seconds, poll_timeout=0.05)  # run's default
    finally:
        _stop(proc)
        src.close()
        sink.close()
    lat = np.array(sink.lat[5:])
    return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "n": len(lat),
            "split_ms": sink.split()}


def _raw_rate(broker, topic: str, total: int, group: str, fast: dict) -> float:
    """Messages per second a plain kafka-python consumer polls from the backlog (same settings).

    Its rate does not depend on ``max_poll_records`` (500, 2 000, 5 000: 62-69k messages/s each,
    alternated, 3 runs), so the engine's larger polls are not compared with a slowed baseline.
    """
    from kafka import KafkaConsumer

    from bcistream.streamer.kafka_config import CONSUMER_DEFAULTS

    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=5,
                             max_poll_records=CONSUMER_DEFAULTS["max_poll_records"], **fast)
    n, t0 = 0, None
    while n < total:
        got = consumer.poll(timeout_ms=100)
        if got and t0 is None:
            t0 = time.monotonic()
        n += sum(len(r) for r in got.values())
    rate = n / (time.monotonic() - t0)
    consumer.close()
    return rate


def kafka_ingest(pipe, broker, streams: int = 200, chunks: int = 600, topic: str = "ing.raw",
                 markers: bool = True) -> dict:
    """Decode+decide rate of a backlog of 22x25 float32 chunks vs plain kafka-python consumption.

    600 chunks per stream (120 000 messages, ~3 s of engine time): with the 120 of earlier runs
    (~0.5 s) start-up dominated and the ratio spread 0.39-0.59 between identical runs. The raw
    rate is measured before and after the engine (it drifts ~10 % run to run); their mean is used.
    """
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.streamer.kafka_source import KafkaSource

    broker.create_topics({topic: 4, f"{topic}.markers": 1})
    total = streams * chunks
    proc = _child("kafka-push", "--bootstrap", broker.bootstrap, "--topic", topic, "--streams",
                  str(streams), "--chunks", str(chunks))
    proc.wait(300)
    fast = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}
    raw_before = _raw_rate(broker, topic, total, f"{topic}-raw-1", fast)
    # With a marker topic as `run` has: a backlog drains it about once per second of stream time.
    src = KafkaSource(broker.bootstrap, topic, group=f"{topic}-engine",
                      markers_topic=f"{topic}.markers" if markers else None,
                      n_channels=N_CH, sfreq=SFREQ, kafka_config=fast)
    engine = Engine(pipe, "1", EngineConfig(hop_s=0.25, triggers=("hop",)))
    from bcistream.realtime.loop import run_loop

    stop = threading.Event()
    state = {"t0": None}

    def on_tick(decisions):
        if state["t0"] is None and src.stats.messages:
            state["t0"] = time.monotonic()
        if src.stats.messages >= total:
            stop.set()

    run_loop(engine, src, [_Null()], stop, on_tick, poll_timeout=0.05)
    engine_rate = total / (time.monotonic() - state["t0"])
    decisions = int(engine.stats()["hop_decisions"])
    src.close()
    raw_after = _raw_rate(broker, topic, total, f"{topic}-raw-2", fast)
    raw_rate = (raw_before + raw_after) / 2
    return {"raw_rate": raw_rate, "raw_rates": [round(raw_before), round(raw_after)],
            "engine_rate": engine_rate, "ratio": engine_rate / raw_rate, "decisions": decisions,
            "messages": total}


def kafka_push(bootstrap: str, topic: str, streams: int, chunks: int, realtime: bool) -> None:
    """Child: send ``chunks`` 25-sample chunks per stream (wire format), in real time or at once."""
    from bcistream.streamer.kafka_sink import KafkaChunkProducer

    extra = {} if realtime else {"linger_ms": 20, "batch_size": 1 << 20}
    prod = KafkaChunkProducer(bootstrap, topic, "unused", extra)
    rng = np.random.default_rng(1)
    block = (rng.standard_normal((N_CH, 1000)) * 1e-5).astype(np.float32)
    print("ready", flush=True)
    start = time.monotonic()
    for k in range(chunks):
        if realtime:
            left = start + k * 0.1 - time.monotonic()
            if left > 0:
                time.sleep(left)
        a = (k * 25) % 975
        for s in range(streams):
            # The first sample's timestamp makes the LAST one "now": latency counts from the send.
            prod.send_chunk(f"s{s}", block[:, a:a + 25], SFREQ, k * 25, time.time() - 24 / SFREQ)
        if realtime or k % 20 == 0:
            prod.flush()
    prod.close()


def kafka_rows(pipe) -> list[dict]:
    """The Kafka summary rows: e2e latency, ingest ratio, confluent-kafka vs kafka-python."""
    from bcistream.streamer.local_broker import LocalBroker as KafkaBroker

    rows = []
    with _all_cores():
        broker = KafkaBroker().start()
    try:
        klat = kafka_latency(pipe, broker)
        rows.append(_row("kafka_e2e_p99_ms", "Kafka: chunk produced -> decision produced (acked), p99 "
                         "(25-sample chunks, hop 0.1 s, fetch_max_wait_ms 5)", round(klat["p99"], 3), "ms",
                         15.0, "low", p50=round(klat["p50"], 3), decisions=klat["n"],
                         split_ms=klat["split_ms"]))
        ing = kafka_ingest(pipe, broker)
        rows.append(_row("kafka_ingest_ratio", "Kafka: 22x25 float32 chunks decoded and decided per s / "
                         "plain kafka-python consume rate (same backlog, same run)", round(ing["ratio"], 3),
                         "ratio", 0.7, "high", baseline=1.0, raw_msgs_per_s=round(ing["raw_rate"]),
                         raw_before_after=ing["raw_rates"],
                         engine_msgs_per_s=round(ing["engine_rate"]), decisions=ing["decisions"],
                         messages=ing["messages"]))
        from benchmarks.kafka_clients import confluent_rate, kafka_python_rate

        kp = kafka_python_rate(broker.bootstrap, "ing.raw", ing["messages"])
        ck = confluent_rate(broker.bootstrap, "ing.raw", ing["messages"])
        rows.append(_row("kafka_confluent_vs_kafka_python", "Kafka: raw consume rate of confluent-kafka "
                         "(librdkafka) / kafka-python on the same backlog, same run (values touched)",
                         None if ck is None else round(ck / kp, 3), "ratio", None, "high", baseline=1.0,
                         kafka_python_msgs_per_s=round(kp), confluent_msgs_per_s=None if ck is None
                         else round(ck)))
    finally:
        broker.stop()
    return rows
