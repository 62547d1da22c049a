"""KServe's `deploymentMode: ModelMesh` on one machine: InferenceServices whose formats a multi-model runtime serves
share that runtime's deployment (modelmesh-serving-<runtime>, podsPerRuntime replicas); each is a model in it,
answering at its own URL and at the shared one under its name (REST and gRPC), with modelStatus as modelmesh-serving
writes it. A spec change moves the vmodel to the new model only once that is loaded — the old one answers until
then, with no error; a model that cannot load is reported and the previous one keeps serving; a deleted isvc's model
is removed."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from support import mm_models
from support.observe import wait_for
from support.platform import applied, cli

MESH = "modelmesh-serving-mlserver-1-x"


def isvc(name: str, uri: Path, fmt: str = "sklearn") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": str(uri)}}},
    }


def infer(plat, route: str, model: str) -> httpx.Response:
    url = f"{plat.gateway}/serving/default/{route}/v2/models/{model}/infer"
    return httpx.post(url, json=mm_models.ZERO_V2, timeout=30)


def answer(plat, route: str, model: str) -> float | None:
    reply = infer(plat, route, model)
    return reply.json()["outputs"][0]["data"][0] if reply.status_code == 200 else None


def model_status(plat, name: str) -> dict:
    return plat.isvc(name).get("status", {}).get("modelStatus", {})


def active_state(plat, name: str) -> str:
    return model_status(plat, name).get("states", {}).get("activeModelState", "")


@pytest.mark.timeout(300)
def test_modelmesh_inference_services_share_their_runtimes_deployment(tmp_path: Path) -> None:
    repo = mm_models.repository(tmp_path / "models", 6)
    with applied(tmp_path, [isvc("mm-a", repo / "m1"), isvc("mm-b", repo / "m2")]) as plat:
        wait_for(lambda: plat.ready("mm-a") and plat.ready("mm-b"), "both ModelMesh isvcs Ready", timeout=150)
        wait_for(lambda: active_state(plat, "mm-a") == "Loaded", "mm-a loaded now (loadNow)", timeout=60)
        status = plat.isvc("mm-a")["status"]
        assert status["deploymentMode"] == "ModelMesh"
        first = status["components"]["predictor"]["activeModelId"]
        assert first.startswith("mm-a__isvc-")
        assert model_status(plat, "mm-a")["transitionStatus"] == "UpToDate"
        assert model_status(plat, "mm-a")["copies"]["totalCopies"] >= 1
        assert status["url"].endswith("/serving/default/mm-a")
        assert answer(plat, "mm-a", "mm-a") == pytest.approx(1)
        assert answer(plat, MESH, "mm-b") == pytest.approx(2)  # the shared endpoint, by the vmodel's name
        assert answer(plat, MESH, first) == pytest.approx(1)  # and by the concrete model id
        pids = plat.replica_pids()
        assert len(pids) == 2  # one deployment of podsPerRuntime replicas for both isvcs

        with grpcclient.InferenceServerClient(f"127.0.0.1:{plat.grpc_port}") as client:
            for route, name, expected in ((MESH, "mm-b", 2), ("mm-a", "mm-a", 1)):
                inp = grpcclient.InferInput("input-0", [1, 3], "FP64")
                inp.set_data_from_numpy(np.zeros((1, 3)))
                headers = {"x-modelplane-route": f"/serving/default/{route}"}
                assert client.infer(name, [inp], headers=headers).as_numpy("output-0")[0] == pytest.approx(expected)

        changed = isvc("mm-a", repo / "m3")
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
        cli(plat.home, "apply", "-f", str(tmp_path / "changed.yaml"))
        seen = []

        def moved() -> bool:
            value = answer(plat, "mm-a", "mm-a")
            seen.append(value)
            return value == pytest.approx(3)

        wait_for(moved, "mm-a's vmodel on its new model", timeout=60)
        assert all(v in (pytest.approx(1), pytest.approx(3)) for v in seen)  # never an error while it moved
        wait_for(lambda: model_status(plat, "mm-a").get("transitionStatus") == "UpToDate", "mm-a up to date", 30)
        second = plat.isvc("mm-a")["status"]["components"]["predictor"]["activeModelId"]
        assert second != first and second.startswith("mm-a__isvc-")
        wait_for(lambda: infer(plat, MESH, first).status_code == 404, "the old model removed", timeout=30)

        broken = isvc("mm-a", repo / "broken")
        (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
        cli(plat.home, "apply", "-f", str(tmp_path / "broken.yaml"))
        wait_for(
            lambda: model_status(plat, "mm-a").get("transitionStatus") == "BlockedByFailedLoad",
            "the failed load reported",
            timeout=60,
        )
        ms = model_status(plat, "mm-a")
        assert ms["states"] == {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"}
        assert ms["lastFailureInfo"]["reason"] == "ModelLoadFailed" and ms["lastFailureInfo"]["location"]
        assert ms["lastFailureInfo"]["modelId"] != second
        assert answer(plat, "mm-a", "mm-a") == pytest.approx(3)  # the previous model keeps serving

        plat.stop(signal.SIGKILL)  # a control-plane crash mid-transition: the vmodel's model is in its status
        plat.up()
        wait_for(lambda: answer(plat, "mm-a", "mm-a") == pytest.approx(3), "mm-a after the restart", timeout=60)
        assert plat.replica_pids() == pids  # the shared deployment re-adopted
        wait_for(
            lambda: model_status(plat, "mm-a").get("transitionStatus") == "BlockedByFailedLoad",
            "the blocked transition after the restart",
            timeout=60,
        )
        assert plat.isvc("mm-a")["status"]["components"]["predictor"]["activeModelId"] == second

        cli(plat.home, "delete", "isvc", "mm-b")
        wait_for(lambda: infer(plat, MESH, "mm-b").status_code == 404, "mm-b gone from the shared endpoint", 30)
        assert answer(plat, "mm-a", "mm-a") == pytest.approx(3)


@pytest.mark.timeout(120)
def test_a_modelmesh_isvc_no_multi_model_runtime_serves_says_why(tmp_path: Path) -> None:
    repo = mm_models.repository(tmp_path / "models", 1, broken=False)
    with applied(tmp_path, [isvc("mm-pmml", repo / "m0", fmt="pmml")]) as plat:
        wait_for(lambda: model_status(plat, "mm-pmml").get("transitionStatus") == "InvalidSpec", "refused", 60)
        info = model_status(plat, "mm-pmml")["lastFailureInfo"]
        assert info["reason"] == "NoSupportingRuntime"
        assert not plat.ready("mm-pmml")
        refused = infer(plat, "mm-pmml", "mm-pmml")
        assert refused.status_code == 503 and "no ready replica" in refused.json()["error"]  # routed nowhere
