"""Worker memory of a real `bentoml serve`: flat over 20,000 requests, bounded peak per JSON request.

BentoML 1.4 kept each request's context alive until its timeout timer fired (+~5 kB/request
until ``traffic.timeout`` seconds of traffic); `bcistream.serving.upstream` cancels the timer.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.serving_support import MODEL_NAME, Server, make_registry

pytestmark = pytest.mark.slow

JSON_MB = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reg = make_registry(tmp_path_factory.mktemp("serving-mem"), n_versions=1)
    srv = Server({"BCISTREAM_MODEL_URI": f"models:/{MODEL_NAME}@champion",
                  "BCISTREAM_TRACKING_URI": reg.tracking_uri, "BCISTREAM_POLL_S": "0",
                  "BCISTREAM_MAX_JSON_MB": str(JSON_MB)},
                 cwd=tmp_path_factory.mktemp("serving-mem-run"))
    yield srv
    srv.stop()


def _worker(server) -> psutil.Process:
    """The process that answers requests: the deepest child of the `bcistream serve` group."""
    kids = psutil.Process(server.proc.pid).children(recursive=True)
    return max(kids, key=lambda p: p.memory_info().rss)


def _hwm_bytes(proc: psutil.Process) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_rss_is_flat_over_20000_requests(server):
    body = {"features": [[0.1, -0.2, 0.3, -0.4, 0.5, -0.6]], "version": "1"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(1000):  # warm-up: allocator pools, lazy imports, metric label sets
            assert http.post("/classify_features", json=body).status_code == 200
        worker = _worker(server)
        before = worker.memory_info().rss
        for i in range(20_000):
            r = http.post("/classify_features", json=body if i % 10 else {"features": [[1e308] * 6],
                                                                           "version": "1"})
            assert r.status_code == (200 if i % 10 else 400)
        after = worker.memory_info().rss
    growth = after - before
    print(f"worker RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MB over 20,000 requests")
    # Unpatched BentoML 1.4.40 grew ~5 kB/request here (~100 MB over 20,000 requests).
    assert growth < 8 * 2**20, f"worker RSS grew {growth / 2**20:.1f} MB over 20,000 requests"


def test_peak_memory_of_a_json_request_at_the_cap_is_bounded(server):
    rng = np.random.default_rng(0)
    one = np.round(rng.standard_normal((22, 1000)) * 1e-5, 9).tolist()
    n = 1
    while len(json.dumps([one] * (n + 1))) < JSON_MB * 2**20:
        n += 1
    text = json.dumps([one] * n).encode()
    worker = _worker(server)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.post("/classify", content=json.dumps([one]), headers={"content-type": "application/json"})
        base = _hwm_bytes(worker)
        rss = worker.memory_info().rss
        r = http.post("/classify", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 200 and len(r.json()["labels"]) == n
        peak = max(_hwm_bytes(worker), base) - rss
    # Body + parsed Python floats (~3x the text at 9 digits) + float64 array + filter output.
    assert peak < 20 * len(text), f"peak {peak / 2**20:.0f} MB for a {len(text) / 2**20:.1f} MB body"
    print(f"peak worker memory above RSS for a {len(text) / 2**20:.1f} MB JSON body: {peak / 2**20:.0f} MB")
