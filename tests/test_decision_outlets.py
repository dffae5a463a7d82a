"""Decision outlets for rigs: the numeric LSL probability outlet, the cue-only label outlet, the
decision JSON Schema (Kafka, LSL, JSONL) and the profile's class order everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

import jsonschema
import numpy as np
import pytest

from bcistream.data.profiles import load_profile
from bcistream.realtime.records import Decision
from bcistream.schemas import decision_schema
from bcistream.streamer.lsl_sink import LslLabelSink, LslProbabilitySink, OutletMeta
from tests.helpers import wait_until

PROFILE = load_profile(None)
META = OutletMeta(model="models:/bcistream@champion", version="3", profile=PROFILE.name,
                  classes=tuple(PROFILE.class_names))


def _decision(trigger, probs, stamp, label=None, stream="s1"):
    probabilities = dict(zip(PROFILE.class_names, probs, strict=True))
    label = label or max(probabilities, key=probabilities.get)
    return Decision(stream, trigger, 1000, stamp, label, probabilities, "3",
                    cue_label="left" if trigger == "cue" else None, latency_ms=1.5)


def _inlet(name, source_id, timeout=10.0):
    import pylsl

    info = None

    def found():
        nonlocal info
        for s in pylsl.resolve_byprop("source_id", source_id, 1, 1.0):
            info = s
            return True
        return False

    wait_until(found, timeout=timeout, what=f"outlet {name}")
    inlet = pylsl.StreamInlet(info)
    inlet.open_stream(5)
    return inlet


def _desc(inlet) -> ET.Element:
    return ET.fromstring(inlet.info(5).as_xml())


def test_probability_outlet_is_float32_one_channel_per_class_in_profile_order():
    import pylsl

    name = "proba-" + uuid.uuid4().hex[:6]
    sink = LslProbabilitySink(name, META, streams=["s1"])
    inlet = _inlet(name, f"{name}/s1")
    info = inlet.info(5)
    assert info.channel_format() == pylsl.cf_float32
    assert info.channel_count() == 4 and info.nominal_srate() == pylsl.IRREGULAR_RATE
    assert info.type() == "Probabilities"
    xml = _desc(inlet)
    labels = [c.findtext("label") for c in xml.find("desc/channels")]
    assert labels == ["left", "right", "feet", "tongue"] == list(PROFILE.class_names)
    assert {c.findtext("unit") for c in xml.find("desc/channels")} == {"probability"}
    assert xml.findtext("desc/model") == META.model and xml.findtext("desc/model_version") == "3"
    assert xml.findtext("desc/profile") == PROFILE.name and xml.findtext("desc/units") == "probability"
    assert [c.text for c in xml.find("desc/classes")] == list(PROFILE.class_names)
    assert xml.findtext("desc/stream") == "s1"
    wait_until(lambda: sink.outlets["s1"].have_consumers(), what="consumer")
    now = pylsl.local_clock()
    sent = [_decision("hop", [0.1, 0.2, 0.6, 0.1], now - 2), _decision("cue", [0.7, 0.1, 0.1, 0.1], now - 1)]
    sink.write(sent)
    for d in sent:
        sample, ts = inlet.pull_sample(timeout=5)
        np.testing.assert_allclose(sample, [d.probabilities[c] for c in PROFILE.class_names], rtol=1e-6)
        assert ts == pytest.approx(d.timestamp, abs=1e-6)
    sink.close()


def test_label_outlet_carries_cue_decisions_only():
    import pylsl

    name = "labels-" + uuid.uuid4().hex[:6]
    sink = LslLabelSink(name, META)
    now = pylsl.local_clock()
    sink.write([_decision("hop", [0.1, 0.2, 0.6, 0.1], now - 3, stream="amp")])  # no outlet yet: hop only
    assert sink.outlets == {}
    sink.write([_decision("cue", [0.1, 0.7, 0.1, 0.1], now - 2, stream="amp")])
    inlet = _inlet(name, f"{name}/amp")
    xml = _desc(inlet)
    assert xml.findtext("desc/trigger") == "cue" and xml.findtext("type") == "Markers"
    assert [c.text for c in xml.find("desc/classes")] == list(PROFILE.class_names)
    wait_until(lambda: sink.outlets["amp"].have_consumers(), what="consumer")
    sink.write([_decision("hop", [0.1, 0.2, 0.6, 0.1], now - 1, stream="amp"),
                _decision("cue", [0.1, 0.1, 0.1, 0.7], now, stream="amp")])
    sample, ts = inlet.pull_sample(timeout=5)
    assert sample == ["tongue"] and ts == pytest.approx(now, abs=1e-6)
    assert inlet.pull_sample(timeout=0.5)[0] is None  # the hop decision was not published
    sink.close()


def test_decision_schema_accepts_decisions_and_refuses_broken_ones():
    schema = decision_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    good = json.loads(_decision("cue", [0.7, 0.1, 0.1, 0.1], 12.5).to_json())
    jsonschema.validate(good, schema)
    assert list(good["probabilities"]) == list(PROFILE.class_names)  # profile order on the wire
    for broken in ({**good, "trigger": "maybe"}, {**good, "probabilities": {"left": 1.5}},
                   {k: v for k, v in good.items() if k != "label"}, {**good, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_engine_decisions_follow_the_profile_class_order_and_the_schema():
    from bcistream.realtime.engine import Engine, EngineConfig
    from bcistream.realtime.protocols import Batch, Chunk, Marker
    from tests.realtime_data import fitted_pipeline, synth_recording

    pipe = fitted_pipeline()
    rec = synth_recording(20.0, seed=5)
    engine = Engine(pipe, version="1", config=EngineConfig(hop_s=0.5, triggers=("hop", "cue")))
    markers = [Marker("s", c.label, sample=c.sample) for c in rec.cues]
    out = []
    for a in range(0, rec.data.shape[1], 250):
        out += engine.process(Batch(chunks=[Chunk("s", rec.data[:, a:a + 250], None, a, 0.0)],
                                    markers=[m for m in markers if a <= m.sample < a + 250]))
    assert out
    order = [c for c in PROFILE.class_names if c in set(str(c) for c in pipe.classes_)]
    schema = decision_schema()
    for d in out:
        assert list(d.probabilities) == order
        jsonschema.validate(json.loads(d.to_json()), schema)


@pytest.mark.slow
def test_kafka_decisions_follow_the_schema(kafka_broker):
    from kafka import KafkaConsumer

    from bcistream.streamer.kafka_sink import KafkaDecisionSink

    topic = "decisions-" + uuid.uuid4().hex[:6]
    sink = KafkaDecisionSink(kafka_broker.bootstrap, topic)
    sent = [_decision("hop", [0.1, 0.2, 0.6, 0.1], 1.0), _decision("cue", [0.7, 0.1, 0.1, 0.1], None)]
    sink.write(sent)
    sink.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, fetch_max_wait_ms=10)
    got = []
    for msg in consumer:
        got.append(json.loads(msg.value))
        if len(got) == len(sent):
            break
    consumer.close()
    schema = decision_schema()
    for body in got:
        jsonschema.validate(body, schema)
    assert [Decision.from_dict(b) for b in got] == sent


@pytest.mark.slow
def test_run_publishes_probability_and_label_outlets(stream_setup, tmp_path):
    """replay -> LSL -> `bcistream run --lsl-proba --lsl-labels` (own processes) -> a stimulus program."""
    name = "rig-" + uuid.uuid4().hex[:6]
    proba_name, label_name = f"{name}-proba", f"{name}-labels"
    out = tmp_path / "decisions.jsonl"
    run = subprocess.Popen([sys.executable, "-m", "bcistream", "run", "--from", f"lsl:{name}",
                            "--model", str(stream_setup.model_dir), "--to", f"jsonl:{out}",
                            "--lsl-proba", proba_name, "--lsl-labels", label_name, "--trigger", "both",
                            "--resolve-timeout", "60", "--no-view", "--duration", "120", "--idle-exit", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    player = None
    try:
        # The outlets exist while the engine still waits for the EEG stream.
        proba = _inlet(proba_name, f"{proba_name}/{name}", timeout=60)
        labels = _inlet(label_name, f"{label_name}/{name}", timeout=60)
        xml = _desc(proba)
        classes = [c.findtext("label") for c in xml.find("desc/channels")]
        assert classes == [c for c in PROFILE.class_names if c in classes]
        player = subprocess.Popen([sys.executable, "-m", "bcistream", "replay",
                                   str(stream_setup.recording_path), "--to", "lsl", "--name", name,
                                   "--speed", "25", "--chunk", "25", "--wait-consumer", "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        rows, cue_labels = [], []
        n_cues = len(stream_setup.expected)

        def pulled():
            data, _ = proba.pull_chunk(timeout=0.2)
            rows.extend(data)
            got, _ = labels.pull_chunk(timeout=0.0)
            cue_labels.extend(s[0] for s in got)
            return len(cue_labels) >= n_cues
        wait_until(pulled, timeout=120, what="all cue labels on the label outlet")
        plog, _ = player.communicate(timeout=60)
        assert player.returncode == 0, plog.decode(errors="replace")[-2000:]
        log, _ = run.communicate(timeout=60)
        assert run.returncode == 0, log.decode(errors="replace")[-2000:]
    finally:
        for proc in (run, player):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    cue = [d for d in decisions if d["trigger"] == "cue"]
    assert cue_labels == [d["label"] for d in cue] == [stream_setup.expected[d["window_end"]] for d in cue]
    assert len(rows) >= len(cue) and all(abs(sum(r) - 1) < 1e-4 for r in rows)
    assert all(list(d["probabilities"]) == classes for d in decisions)
