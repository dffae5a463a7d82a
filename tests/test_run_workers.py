"""``run --workers``: LSL streams sharded over engine processes decide exactly as one engine does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid

import pytest

from bcistream.cli import main
from bcistream.errors import BcistreamError
from bcistream.workers import kafka_specs, shard

N_STREAMS = 3


def test_shard_round_robin_keeps_every_stream_once():
    names = [f"s{i}" for i in range(7)]
    parts = shard(names, 3)
    assert parts == [["s0", "s3", "s6"], ["s1", "s4"], ["s2", "s5"]]
    assert shard(names[:2], 4) == [["s0"], ["s1"]]  # never an idle worker
    with pytest.raises(BcistreamError, match="workers must be >= 1"):
        shard(names, 0)


def test_kafka_workers_refuse_sinks_they_cannot_share():
    with pytest.raises(BcistreamError, match="every --to must be kafka:TOPIC"):
        kafka_specs("eeg.raw", 2, ["kafka:decisions", "jsonl:out.jsonl"], pipeline=None, version="1",
                    profile=None, config=None, opts=None)


def test_workers_refused_with_single_engine_features(capsys):
    code = main(["run", "--from", "lsl:a,b", "--model", "/nowhere/model", "--workers", "2", "--record"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: --workers > 1 cannot be combined with --record" in err


class _Thread(threading.Thread):
    def __init__(self, argv):
        super().__init__(daemon=True)
        self.argv, self.code = argv, None

    def run(self):
        self.code = main(self.argv)


def _replay_and_run(setup, names, out, workers):
    # 5x: an inlet buffers 30 s of stream time, 6 s of wall time here -- the run may still be
    # starting (its engine, its workers) on a loaded machine when the replays begin.
    players = [subprocess.Popen([sys.executable, "-m", "bcistream", "replay", str(setup.recording_path),
                                 "--to", "lsl", "--name", name, "--speed", "5", "--chunk", "25",
                                 "--wait-consumer", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for name in names]
    runner = _Thread(["run", "--from", "lsl:" + ",".join(names), "--model", str(setup.model_dir),
                      "--to", f"jsonl:{out}", "--trigger", "both", "--resolve-timeout", "30",
                      "--workers", str(workers), "--no-view", "--duration", "180", "--idle-exit", "2"])
    runner.start()
    try:
        for p in players:
            log, _ = p.communicate(timeout=180)
            assert p.returncode == 0, log.decode(errors="replace")[-2000:]
        runner.join(120)
        assert not runner.is_alive() and runner.code == 0
    finally:
        for p in players:
            if p.poll() is None:
                p.kill()
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_two_workers_decide_exactly_as_one(stream_setup, tmp_path, capsys):
    tag = uuid.uuid4().hex[:6]
    names = {k: [f"w{k}-{tag}-{i}" for i in range(N_STREAMS)] for k in (1, 2)}
    one = _replay_and_run(stream_setup, names[1], tmp_path / "one.jsonl", 1)
    two = _replay_and_run(stream_setup, names[2], tmp_path / "two.jsonl", 2)
    # The final coverage line of the pool counts what its workers received (the parent sees no
    # batches: it once printed "decided cues 36/0, decoded samples 79730/0").
    lines = re.findall(r"decided cues (\d+)/(\d+), decoded samples (\d+)/(\d+)",
                       "".join(capsys.readouterr()))
    assert len(lines) == 2, lines
    for decided, seen, decoded, received in (map(int, line) for line in lines):
        assert 0 < decided <= seen and 0 < decoded <= received

    def keyed(decisions, prefix):
        # Same recording in every stream: key by the stream's index, not its name.
        return {(d["stream_id"].rsplit("-", 1)[1], d["trigger"], d["window_end"]):
                (d["label"], tuple(round(d["probabilities"][c], 6) for c in sorted(d["probabilities"])))
                for d in decisions if d["stream_id"].startswith(prefix)}

    a, b = keyed(one, "w1-"), keyed(two, "w2-")
    assert len(a) == len(one) and len(b) == len(two), "a window was decided twice"
    cues = {k for k in a if k[1] == "cue"}
    assert len(cues) == N_STREAMS * len(stream_setup.expected), "cue decisions missing with one worker"
    assert {(k[2], v[0]) for k, v in a.items() if k[1] == "cue"} == set(stream_setup.expected.items())
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    assert not (only_a or only_b or differ), (f"two workers decided differently from one: {len(a)} vs "
                                             f"{len(b)}; only one: {only_a[:5]}; only two: {only_b[:5]}; "
                                             f"differ: {differ[:5]}")
