"""KServe's multi-model serving on one machine: a predictor with no storageUri is a multi-model server; TrainedModel
objects (v1alpha1) are pulled into it and answer at the InferenceService's URL under their own names; a changed
storageUri serves the new model, a deleted TrainedModel stops answering, memory beyond the predictor's limit is
reported, a model that cannot be loaded shows in its status until its files are fixed, the webhook's refusals come
back from `modelplane apply`, and the TrainedModels go with their InferenceService."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from support import mm_models
from support.observe import wait_for
from support.platform import applied, cli

PARENT = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "sklearn-mms"},
    "spec": {
        "predictor": {
            "minReplicas": 1,
            "sklearn": {"protocolVersion": "v1", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}},
        }
    },
}


def trained(name: str, uri: Path, memory: str = "1Mi") -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": name},
        "spec": {
            "inferenceService": "sklearn-mms",
            "model": {"storageUri": str(uri), "framework": "sklearn", "memory": memory},
        },
    }


def condition(doc: dict, kind: str) -> str:
    return next((c["status"] for c in doc.get("status", {}).get("conditions", []) if c["type"] == kind), "Unknown")


def get_tm(plat, name: str) -> dict:
    reply = httpx.get(
        f"http://127.0.0.1:{plat.api_port}/apis/serving.kserve.io/v1alpha1/namespaces/default/trainedmodels/{name}",
        headers=plat.headers,
    )
    return reply.json() if reply.status_code == 200 else {}


def predict(plat, name: str) -> httpx.Response:
    url = f"{plat.gateway}/serving/default/sklearn-mms/v1/models/{name}:predict"
    return httpx.post(url, json={"instances": [[0.0, 0.0, 0.0]]}, timeout=30)


@pytest.mark.timeout(240)
def test_trained_models_are_served_by_their_multi_model_inference_service(tmp_path: Path) -> None:
    repo = mm_models.repository(tmp_path / "models", 8, broken=False)
    with applied(tmp_path, [PARENT, trained("tm-a", repo / "m3"), trained("tm-b", repo / "m5")]) as plat:
        wait_for(lambda: condition(get_tm(plat, "tm-a"), "Ready") == "True", "tm-a Ready", timeout=120)
        wait_for(lambda: condition(get_tm(plat, "tm-b"), "Ready") == "True", "tm-b Ready", timeout=60)
        doc = get_tm(plat, "tm-a")
        assert condition(doc, "IsMMSPredictor") == "True" and doc["status"]["url"].endswith("/v1/models/tm-a:predict")
        assert doc["metadata"]["labels"]["inferenceservice"] == "sklearn-mms"
        assert predict(plat, "tm-a").json()["predictions"][0] == pytest.approx(3)
        assert predict(plat, "tm-b").json()["predictions"][0] == pytest.approx(5)
        attack = httpx.post(f"{plat.gateway}/serving/default/sklearn-mms/v2/repository/models/tm-a/unload", json={})
        assert attack.status_code == 403  # the platform reaches its replicas' repository API; clients do not
        table = cli(plat.home, "get", "tm").stdout
        assert table.split()[:4] == ["NAME", "URL", "READY", "AGE"] and "tm-a" in table and "True" in table

        changed = trained("tm-a", repo / "m7")
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
        cli(plat.home, "apply", "-f", str(tmp_path / "changed.yaml"))
        wait_for(
            lambda: predict(plat, "tm-a").json().get("predictions", [None])[0] == pytest.approx(7),
            "tm-a serving its new storageUri",
            timeout=60,
        )

        big = trained("tm-big", repo / "m1", memory="1Gi")
        (tmp_path / "big.yaml").write_text(yaml.safe_dump(big))
        cli(plat.home, "apply", "-f", str(tmp_path / "big.yaml"))
        wait_for(
            lambda: condition(get_tm(plat, "tm-big"), "MemoryResourceAvailable") == "False",
            "tm-big refused for memory",
            timeout=30,
        )

        broken_dir = tmp_path / "broken"
        broken_dir.mkdir()
        (broken_dir / "model.joblib").write_bytes(b"not a pickle")
        (tmp_path / "broken.yaml").write_text(yaml.safe_dump(trained("tm-broken", broken_dir)))
        cli(plat.home, "apply", "-f", str(tmp_path / "broken.yaml"))
        wait_for(lambda: condition(get_tm(plat, "tm-broken"), "Ready") == "True", "tm-broken pulled", timeout=30)
        assert predict(plat, "tm-broken").status_code == 503  # pulled, but it cannot be loaded
        wait_for(lambda: condition(get_tm(plat, "tm-broken"), "Ready") == "False", "the load failure in status", 30)
        ready = next(c for c in get_tm(plat, "tm-broken")["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ModelLoadFailed" and "fix the model's files" in ready["message"]
        (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(trained("tm-broken", repo / "m2")))
        cli(plat.home, "apply", "-f", str(tmp_path / "fixed.yaml"))  # new files: the old failure is forgiven
        wait_for(lambda: condition(get_tm(plat, "tm-broken"), "Ready") == "True", "tm-broken fixed", timeout=30)
        assert predict(plat, "tm-broken").json()["predictions"][0] == pytest.approx(2)

        bad = trained("bad.name", repo / "m1")
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        refused = cli(plat.home, "apply", "-f", str(tmp_path / "bad.yaml"), check=False)
        assert refused.returncode != 0 and "[a-zA-Z0-9_-]+" in refused.stderr
        grown = trained("tm-b", repo / "m5", memory="2Mi")
        (tmp_path / "grown.yaml").write_text(yaml.safe_dump(grown))
        refused = cli(plat.home, "apply", "-f", str(tmp_path / "grown.yaml"), check=False)
        assert refused.returncode != 0 and "immutable" in refused.stderr

        cli(plat.home, "delete", "tm", "tm-b")
        wait_for(lambda: predict(plat, "tm-b").status_code == 404, "tm-b gone from the server", timeout=30)

        cli(plat.home, "delete", "isvc", "sklearn-mms")
        wait_for(lambda: not get_tm(plat, "tm-a"), "the TrainedModels deleted with their InferenceService", timeout=30)
