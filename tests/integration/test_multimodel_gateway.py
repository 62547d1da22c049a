"""Many models across the replicas of one InferenceService (annotation `modelplane.io/model-routing: "true"`, a
repository storageUri, `--model-cache-bytes`): the gateway sends each model's requests to the replica that holds
it — one load per model, not one per replica — a model that fails to load is tried on the other replica and its
failure answered, and when a replica is killed its models are served by the other."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
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

        broken = infer(plat.gateway, "broken")
        assert broken.status_code == 503 and "not a pickle" not in broken.text and "broken" in broken.text
        assert broken.headers["x-model-cache"] == "failed"

        os.kill(plat.replica_pids()[0], signal.SIGKILL)
        for i in range(MODELS):  # the survivor takes over the dead replica's models (loading them)
            reply = infer(plat.gateway, f"m{i}")
            assert reply.status_code == 200 and reply.json()["outputs"][0]["data"][0] == pytest.approx(i)
