"""Many models in one `modelplane serve` process (--model-cache-bytes): a repository of scikit-learn models
registered in standby, loaded on first request over REST V1/V2 and gRPC through tritonclient, the least recently
used evicted, states in the repository index, a broken model reported and retried, a pinned one kept, repository
unload and load, and the cache's metrics."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from support import mm_models
from support import server as srv
from tritonclient.utils import InferenceServerException

MODELS = 12
CAPACITY_MODELS = 4  # the cache holds about this many


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return mm_models.repository(tmp_path_factory.mktemp("mm") / "repo", MODELS)


@pytest.fixture(scope="module")
def server(repo, logs):
    from modelplane.runtimes.base import pickled_size
    from modelplane.server.multimodel import OVERHEAD_BYTES

    capacity = CAPACITY_MODELS * (pickled_size(mm_models.regression(0)) + OVERHEAD_BYTES) + 100
    args = ["serve", "--model-dir", str(repo), "--model-cache-bytes", str(capacity), "--cache-min-age", "0"]
    running = srv.start([*args, "--pin-models", f"m{MODELS - 1}", "--load-retry", "60"], logs)
    yield running
    running.stop()


def _index(server) -> dict[str, dict]:
    reply = httpx.post(f"{server.http}/v2/repository/index", json={})
    assert reply.status_code == 200
    return {m["name"]: m for m in reply.json()}


def _infer_http(client, name: str) -> float:
    inp = httpclient.InferInput("input-0", [1, 3], "FP64")
    inp.set_data_from_numpy(np.zeros((1, 3)))
    return float(client.infer(name, [inp]).as_numpy("output-0")[0])


def test_models_start_in_standby_except_the_pinned_one(server):
    index = _index(server)
    assert len(index) == MODELS + 1
    assert index[f"m{MODELS - 1}"]["state"] == "READY"
    assert {m["state"] for n, m in index.items() if n != f"m{MODELS - 1}"} == {"UNAVAILABLE"}
    assert index["m0"]["reason"] == "standby"
    assert httpx.get(f"{server.http}/v2/health/ready").status_code == 200  # standby models do not hold readiness


def test_first_requests_load_and_the_least_recently_used_are_evicted(server):
    with httpclient.InferenceServerClient(server.http_hostport) as http:
        for i in range(MODELS - 1):
            assert _infer_http(http, f"m{i}") == pytest.approx(i)
    with grpcclient.InferenceServerClient(server.grpc) as grpc:
        inp = grpcclient.InferInput("input-0", [1, 3], "FP64")
        inp.set_data_from_numpy(np.zeros((1, 3)))
        assert float(grpc.infer("m0", [inp]).as_numpy("output-0")[0]) == pytest.approx(0)  # evicted, loaded again
    v1 = httpx.post(f"{server.http}/v1/models/m1:predict", json={"instances": [[0.0, 0.0, 0.0]]})
    assert v1.status_code == 200 and v1.json()["predictions"][0] == pytest.approx(1)
    assert v1.headers["x-model-cache"] == "miss"  # m1 had been evicted; this request waited for its load
    again = httpx.post(f"{server.http}/v1/models/m1:predict", json={"instances": [[0.0, 0.0, 0.0]]})
    assert again.headers["x-model-cache"] == "hit"
    index = _index(server)
    ready = {n for n, m in index.items() if m["state"] == "READY"}
    assert {"m0", "m1", f"m{MODELS - 1}"} <= ready and len(ready) <= CAPACITY_MODELS
    assert index["m2"]["state"] == "UNAVAILABLE" and index["m2"]["reason"] == "standby"  # evicted: loads again
    metrics = httpx.get(f"{server.http}/metrics").text
    evictions = float(re.search(r"^modelplane_model_cache_evictions_total (\S+)$", metrics, re.M).group(1))
    loaded = float(re.search(r"^modelplane_model_cache_loaded_bytes (\S+)$", metrics, re.M).group(1))
    capacity = float(re.search(r"^modelplane_model_cache_capacity_bytes (\S+)$", metrics, re.M).group(1))
    assert evictions >= MODELS - CAPACITY_MODELS and 0 < loaded <= capacity
    assert "modelplane_model_cache_load_seconds_count" in metrics


def test_a_broken_model_is_reported_and_not_retried_before_its_back_off(server):
    first = httpx.post(f"{server.http}/v2/models/broken/infer", json={"inputs": []})
    assert first.status_code == 503 and "broken" in first.json()["error"]
    again = httpx.post(f"{server.http}/v2/models/broken/infer", json={"inputs": []})
    assert again.status_code == 503 and "tried again in" in again.json()["error"]
    assert _index(server)["broken"]["reason"].startswith("failed: ")
    assert httpx.get(f"{server.http}/v2/models/m0").status_code == 200  # the others are unaffected


def test_repository_unload_stops_serving_until_loaded_again(server):
    with httpclient.InferenceServerClient(server.http_hostport) as http:
        http.load_model("m5")
        assert http.is_model_ready("m5")
        http.unload_model("m5")
        assert not http.is_model_ready("m5")
        assert _index(server)["m5"]["reason"] == "unloaded"
        with pytest.raises(InferenceServerException, match="load it to serve it again"):
            _infer_http(http, "m5")
        http.load_model("m5")
        assert _infer_http(http, "m5") == pytest.approx(5)
        with pytest.raises(InferenceServerException, match=r"not found|Not Found|404"):
            http.load_model("no-such-model")
    assert "no-such-model" not in _index(server)
