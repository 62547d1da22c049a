"""Many models across the replicas of one InferenceService (annotation `modelplane.io/model-routing: "true"`, a
repository storageUri, `--model-cache-bytes`): the gateway sends each model's requests to the replica that holds
it — one load per model, not one per replica, over REST and gRPC — a model that fails to load is tried on the
other replica and its failure answered, and when a replica is killed its models are served by the other."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import mm_models
from support.observe import wait_for
from support.platform import applied

MODELS = 11  # odd, so that round robin over two replicas would not keep each model on one by chance


def isvc(repo: Path) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mm", "annotations": {"modelplane.io/model-routing": "true"}},
        "spec": {
            "predictor": {
                "minReplicas": 2,
                "maxReplicas": 2,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": str(repo),
                    "args": ["--model-cache-bytes=64Mi"],
                },
            }
        },
    }


def cache_misses(plat) -> float:  # type: ignore[no-untyped-def]
    """Requests that waited for a load, summed over the replicas (read from each one's own /metrics)."""
    total = 0.0
    for replica in json.loads((plat.home / "replicas.json").read_text())["replicas"]:
        text = httpx.get(f"http://127.0.0.1:{replica['http_port']}/metrics").text
        total += float(re.search(r"^modelplane_model_cache_misses_total (\S+)$", text, re.M).group(1))
    return total


def infer(gateway: str, name: str) -> httpx.Response:
    return httpx.post(f"{gateway}/serving/default/mm/v2/models/{name}/infer", json=mm_models.ZERO_V2, timeout=30)


@pytest.mark.timeout(240)
def test_each_model_is_loaded_once_and_served_where_it_is(tmp_path: Path) -> None:
    repo = mm_models.repository(tmp_path / "repo", MODELS)
    with applied(tmp_path, [isvc(repo)]) as plat:
        wait_for(lambda: plat.ready("mm") and len(plat.replica_pids()) == 2, "2 ready replicas", timeout=120)
        misses = 0
        for _ in range(3):
            for i in range(MODELS):
                reply = infer(plat.gateway, f"m{i}")
                assert reply.status_code == 200, reply.text
                assert reply.json()["outputs"][0]["data"][0] == pytest.approx(i)
                misses += reply.headers["x-model-cache"] == "miss"
        assert misses == MODELS  # round robin over two replicas would load most models twice

        before = cache_misses(plat)
        with grpcclient.InferenceServerClient(f"127.0.0.1:{plat.grpc_port}") as grpc:
            route = {"x-modelplane-route": "/serving/default/mm"}
            for i in range(MODELS):  # gRPC is routed by the request's model_name too: every call is a hit
                inp = grpcclient.InferInput("input-0", [1, 3], "FP64")
                inp.set_data_from_numpy(np.zeros((1, 3)))
                answer = grpc.infer(f"m{i}", [inp], headers=route).as_numpy("output-0")
                assert float(answer[0]) == pytest.approx(i)
        assert cache_misses(plat) == before

        broken = infer(plat.gateway, "broken")
        assert broken.status_code == 503 and "not a pickle" not in broken.text and "broken" in broken.text
        assert broken.headers["x-model-cache"] == "failed"

        os.kill(plat.replica_pids()[0], signal.SIGKILL)
        for i in range(MODELS):  # the survivor takes over the dead replica's models (loading them)
            reply = infer(plat.gateway, f"m{i}")
            assert reply.status_code == 200 and reply.json()["outputs"][0]["data"][0] == pytest.approx(i)
