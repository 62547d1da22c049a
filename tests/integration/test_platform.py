"""The embedded platform end to end: `modelplane up`, KServe's sample YAML applied unchanged but for storageUri,
predictions through the gateway, canary → promote → rollback, restart without loss, delete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import IRIS_V1, IRIS_V2
from support.observe import wait_for
from support.platform import DATA, Platform, alive, cli, manifest
from support.server import free_port

GET_COLUMNS = ["NAME", "URL", "READY", "PREV", "LATEST", "PREVROLLEDOUTREVISION", "LATESTREADYREVISION", "AGE"]


@pytest.fixture
def platform(tmp_path):
    p = Platform(tmp_path / "home")
    p.home.mkdir()
    p.up()
    yield p
    p.shutdown()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two models that answer differently, so the test can tell which revision served a request."""
    import joblib
    from sklearn.dummy import DummyClassifier

    from modelplane.samples.iris import train_sklearn

    root = tmp_path_factory.mktemp("models")
    v1 = train_sklearn(root / "v1")
    v2 = root / "v2"
    v2.mkdir()
    joblib.dump(
        DummyClassifier(strategy="constant", constant=2).fit([[0, 0, 0, 0]] * 3, [2, 0, 1]), v2 / "model.joblib"
    )
    return v1, v2


def shares(gateway: str, n: int) -> Counter:
    seen: Counter = Counter()
    with httpx.Client() as client:
        for _ in range(n):
            r = client.post(f"{gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1)
            assert r.status_code == 200, r.text
            seen[r.json()["predictions"][0]] += 1
    return seen


def test_apply_predict_canary_promote_rollback_delete(platform, models, tmp_path):
    v1, v2 = models
    out = cli(platform.home, "apply", "-f", str(manifest(tmp_path, v1)))
    assert "inferenceservice.serving.kserve.io/sklearn-iris created" in out.stdout
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    status = platform.isvc("sklearn-iris")["status"]
    assert status["url"] == "http://sklearn-iris.default.example.com"
    assert status["components"]["predictor"]["latestReadyRevision"] == "sklearn-iris-predictor-00001"
    # path routing (plain curl) and host routing, V1 and V2
    by_path = httpx.post(
        f"{platform.gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1
    )
    assert by_path.json() == {"predictions": [1, 1]}
    by_host = httpx.post(
        f"{platform.gateway}/v2/models/sklearn-iris/infer",
        json=IRIS_V2,
        headers={"Host": "sklearn-iris.default.example.com"},
    )
    assert by_host.json()["outputs"][0]["data"] == [1, 1]
    table = cli(platform.home, "get", "isvc").stdout.splitlines()
    assert table[0].split() == GET_COLUMNS
    assert table[1].split()[:3] == ["sklearn-iris", "http://sklearn-iris.default.example.com", "True"]
    described = yaml.safe_load(cli(platform.home, "describe", "isvc", "sklearn-iris").stdout)
    assert described["status"]["modelStatus"]["states"]["activeModelState"] == "Loaded"
    assert "==> sklearn-iris-predictor-00001-0.log <==" in cli(platform.home, "logs", "sklearn-iris").stdout
    predicted = cli(platform.home, "predict", "sklearn-iris", "-d", json.dumps(IRIS_V1)).stdout
    assert json.loads(predicted) == {"predictions": [1, 1]}

    # canary: KServe's canary sample (a new model, canaryTrafficPercent 10, tag routing on)
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v2, "sklearn-iris-canary.yaml")))
    wait_for(
        lambda: (
            [t["revisionName"] for t in platform.isvc("sklearn-iris")["status"]["components"]["predictor"]["traffic"]]
            == ["sklearn-iris-predictor-00002", "sklearn-iris-predictor-00001"]
        ),
        "the canary to be ready and take traffic",
        timeout=60,
    )
    seen = shares(platform.gateway, 2000)
    assert 0.07 <= seen[2] / 2000 <= 0.13, seen
    traffic = platform.isvc("sklearn-iris")["status"]["components"]["predictor"]["traffic"]
    assert [(t["revisionName"], t["percent"], t["tag"]) for t in traffic] == [
        ("sklearn-iris-predictor-00002", 10, "latest"),
        ("sklearn-iris-predictor-00001", 90, "prev"),
    ]
    for tag, expected in (("latest", 2), ("prev", 1)):  # tag routing pins a revision
        host = f"{tag}-sklearn-iris-predictor.default.example.com"
        r = httpx.post(f"{platform.gateway}/v1/models/sklearn-iris:predict", json=IRIS_V1, headers={"Host": host})
        assert r.json()["predictions"][0] == expected
    # promote: drop canaryTrafficPercent
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v2)))
    wait_for(
        lambda: (
            platform.isvc("sklearn-iris")["status"]["components"]["predictor"].get("latestRolledoutRevision")
            == "sklearn-iris-predictor-00002"
        ),
        "the promotion",
    )
    assert shares(platform.gateway, 50) == Counter({2: 50})
    # roll back: canaryTrafficPercent 0 sends everything to the previous rolled-out revision
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v2, canaryTrafficPercent=0)))
    wait_for(lambda: shares(platform.gateway, 5) == Counter({1: 5}), "the rollback")
    # delete: replicas stop, the gateway no longer routes
    pids = platform.replica_pids()
    assert pids
    cli(platform.home, "delete", "isvc", "sklearn-iris")
    wait_for(lambda: not any(alive(p) for p in pids), "the replicas to stop", timeout=30)
    r = httpx.post(f"{platform.gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1)
    assert r.status_code == 404 and "not found" in r.json()["error"]


def test_bad_objects_are_refused_or_reported_and_nothing_else_is_disturbed(platform, models, tmp_path):
    v1, _ = models
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v1)))
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    bad_name = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
    bad_name["metadata"]["name"] = "Bad_Name"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad_name))
    out = cli(platform.home, "apply", "-f", str(path), check=False)
    assert out.returncode == 1 and "a InferenceService name must consist of lower case" in out.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [unclosed\n")
    assert cli(platform.home, "apply", "-f", str(broken), check=False).returncode == 1
    # a format no runtime serves: accepted, reported in status
    onnx = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
    onnx["metadata"]["name"] = "onnx-model"
    onnx["spec"]["predictor"]["model"]["modelFormat"]["name"] = "onnx"
    path.write_text(yaml.safe_dump(onnx))
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: "modelStatus" in (platform.isvc("onnx-model").get("status") or {}), "onnx-model status")
    model_status = platform.isvc("onnx-model")["status"]["modelStatus"]
    assert model_status["transitionStatus"] == "InvalidSpec"
    assert model_status["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    # a runtime that does not exist, and a protocol the named runtime does not speak
    for name, model in (
        ("ghost", {"runtime": "no-such-runtime"}),
        ("mismatch", {"runtime": "kserve-sklearnserver", "protocolVersion": "grpc-v2"}),
    ):
        doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
        doc["metadata"]["name"] = name
        doc["spec"]["predictor"]["model"].update(model)
        path.write_text(yaml.safe_dump(doc))
        cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: "modelStatus" in (platform.isvc("mismatch").get("status") or {}), "mismatch status")
    assert platform.isvc("ghost")["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "RuntimeNotRecognized"
    assert platform.isvc("mismatch")["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    # a storage URI that does not exist: the new revision fails, the old one keeps serving
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, tmp_path / "missing-model")))
    wait_for(
        lambda: platform.isvc("sklearn-iris")["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad",
        "the failed revision to be reported",
    )
    assert "missing-model" in platform.isvc("sklearn-iris")["status"]["modelStatus"]["lastFailureInfo"]["message"]
    r = httpx.post(f"{platform.gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1)
    assert r.json() == {"predictions": [1, 1]}


def test_a_restarted_control_plane_loses_nothing_and_re_adopts_its_replicas(platform, models, tmp_path):
    v1, _ = models
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v1)))
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    pids = platform.replica_pids()
    platform.stop(signal.SIGKILL)  # a crash: replicas keep running
    assert all(alive(p) for p in pids)
    platform.up()
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready again", timeout=60)
    assert platform.replica_pids() == pids  # the same processes, re-adopted
    r = httpx.post(f"{platform.gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1)
    assert r.json() == {"predictions": [1, 1]}
    status = platform.isvc("sklearn-iris")["status"]
    assert status["components"]["predictor"]["latestRolledoutRevision"] == "sklearn-iris-predictor-00001"


def test_rollout_rollback_and_a_killed_replica_under_steady_load(platform, models, tmp_path):
    import threading

    v1, v2 = models
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v1, minReplicas=2)))
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    results: Counter = Counter()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        f"{platform.gateway}/serving/default/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1
                    )
                    results[r.status_code] += 1
                except httpx.HTTPError:
                    results["error"] += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: results[200] > 50, "load to flow")
        cli(platform.home, "apply", "-f", str(manifest(tmp_path, v2, minReplicas=2)))  # rollout
        wait_for(
            lambda: (
                platform.isvc("sklearn-iris")["status"]["components"]["predictor"].get("latestRolledoutRevision")
                == "sklearn-iris-predictor-00002"
            ),
            "the rollout",
            timeout=60,
        )
        cli(
            platform.home, "apply", "-f", str(manifest(tmp_path, v2, minReplicas=2, canaryTrafficPercent=0))
        )  # rollback
        wait_for(
            lambda: (
                platform.isvc("sklearn-iris")["status"]["components"]["predictor"]["traffic"][-1]["revisionName"]
                == "sklearn-iris-predictor-00001"
            ),
            "the rollback",
            timeout=60,
        )
        before_kill = sum(results.values())
        failed_before_kill = before_kill - results[200]
        assert failed_before_kill == 0, results  # rollout and rollback lose nothing
        saved = json.loads((platform.home / "replicas.json").read_text())["replicas"]
        victim = next(r for r in saved if r["revision"].startswith("default.sklearn-iris-predictor-00001."))
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(
            lambda: any(
                r["revision"] == victim["revision"] and r["index"] == victim["index"] and r["pid"] != victim["pid"]
                for r in json.loads((platform.home / "replicas.json").read_text())["replicas"]
            ),
            "the killed replica to be replaced",
        )
        wait_for(lambda: sum(results.values()) > before_kill + 200, "more load after the kill")
    finally:
        stop.set()
        worker.join()
    total = sum(results.values())
    assert (total - results[200]) / total <= 0.001, results


@pytest.mark.parametrize("protocol", ["v1", "v2", "grpc-v2"])
def test_the_transformer_sample_preprocesses_calls_the_predictor_and_postprocesses(
    platform, models, tmp_path, protocol
):
    v1, _ = models
    doc = yaml.safe_load((DATA / "sklearn-iris-transformer.yaml").read_text())  # the sample says v1
    doc["spec"]["predictor"]["model"]["storageUri"] = str(v1)
    args = doc["spec"]["transformer"]["containers"][0]["args"]
    args[args.index("--predictor_protocol") + 1] = protocol
    path = tmp_path / "transformer.yaml"
    path.write_text(yaml.safe_dump(doc))
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: platform.ready("iris-with-transformer"), "the transformer and predictor to be Ready", timeout=90)
    features = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    body = {"instances": [dict(zip(features, row, strict=True)) for row in IRIS_V1["instances"]]}
    r = httpx.post(
        f"{platform.gateway}/serving/default/iris-with-transformer/v1/models/iris-with-transformer:predict", json=body
    )
    assert r.json() == {"predictions": ["versicolor", "versicolor"]}
    components = platform.isvc("iris-with-transformer")["status"]["components"]
    assert components["transformer"]["latestReadyRevision"] == "iris-with-transformer-transformer-00001"
    conditions = {c["type"]: c["status"] for c in platform.isvc("iris-with-transformer")["status"]["conditions"]}
    assert conditions["TransformerReady"] == "True" and conditions["IngressReady"] == "True"


@pytest.fixture(scope="session")
def mlserver_bin():
    """MLServer 1.7.1 in its own virtualenv (built once into .cache/, with the scikit-learn the models use)."""
    import sklearn

    root = Path(__file__).resolve().parents[2]
    venv = root / ".cache" / f"mlserver-1.7.1-sklearn-{sklearn.__version__}"
    binary = venv / "bin" / "mlserver"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        uv = root / ".venv" / "bin" / "uv"
        subprocess.run(
            [
                str(uv),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                "mlserver==1.7.1",
                "mlserver-sklearn==1.7.1",
                f"scikit-learn=={sklearn.__version__}",
            ],
            check=True,
        )
    return binary


def test_any_v2_server_plugs_in_as_a_serving_runtime_mlserver(platform, models, tmp_path, mlserver_bin):
    v1, _ = models
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "mlserver-local"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 2}],
            "protocolVersions": ["v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "docker.io/seldonio/mlserver:1.7.1",
                    "command": [str(mlserver_bin), "start", "/mnt/models"],
                    "env": [
                        {"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "mlserver_sklearn.SKLearnModel"},
                        {"name": "MLSERVER_MODEL_NAME", "value": "{{.Name}}"},
                        {"name": "MLSERVER_MODEL_URI", "value": "/mnt/models/model.joblib"},
                        {"name": "MLSERVER_PARALLEL_WORKERS", "value": "0"},
                    ],
                }
            ],
        },
    }
    doc = yaml.safe_load((DATA / "sklearn-iris-v2.yaml").read_text())
    doc["spec"]["predictor"]["model"]["storageUri"] = str(v1)
    path = tmp_path / "mlserver.yaml"
    path.write_text(yaml.safe_dump_all([runtime, doc]))
    cli(platform.home, "apply", "-f", str(path))
    name = doc["metadata"]["name"]
    wait_for(lambda: platform.ready(name), "MLServer to serve the model", timeout=120)
    assert platform.isvc(name)["status"]["servingRuntimeName"] == "mlserver-local"
    r = httpx.post(f"{platform.gateway}/serving/default/{name}/v2/models/{name}/infer", json=IRIS_V2)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1, 1]


def explained(name: str, uri: Path, explainer_args: list[str]) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": str(uri)}},
            "explainer": {"containers": [{"name": "kserve-container", "args": explainer_args}]},
        },
    }


def test_explain_goes_to_the_explainer_builtin_shap_and_a_custom_class(platform, models, tmp_path):
    v1, _ = models
    background = tmp_path / "background.json"
    background.write_text(json.dumps([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.5, 3.0, 5.8, 2.2]]))
    shap_args = ["--model-class", "modelplane.runtimes.shap:KernelShapExplainer", "--background", str(background)]
    custom_args = ["--model-class", "support.models:Explainer"]
    path = tmp_path / "explained.yaml"
    path.write_text(
        yaml.safe_dump_all([explained("iris-shap", v1, shap_args), explained("iris-custom", v1, custom_args)])
    )
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: platform.ready("iris-shap") and platform.ready("iris-custom"), "both to be Ready", timeout=120)
    base = f"{platform.gateway}/serving/default"
    r = httpx.post(f"{base}/iris-shap/v1/models/iris-shap:explain", json=IRIS_V1, timeout=120)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["predictions"] == [1, 1] and len(doc["explanations"]) == 2 and len(doc["explanations"][0]) == 4
    for prediction, values in zip(doc["predictions"], doc["explanations"], strict=True):  # SHAP's additivity
        assert abs(sum(values) + doc["expected_value"] - prediction) < 1e-6
    assert httpx.post(f"{base}/iris-shap/v1/models/iris-shap:predict", json=IRIS_V1).json() == {"predictions": [1, 1]}
    custom = httpx.post(f"{base}/iris-custom/v1/models/iris-custom:explain", json=IRIS_V1).json()
    assert custom == {"predictions": [1], "explanations": [{"feature": 0, "weight": 0.5}]}


def test_the_control_plane_api_is_kubernetes_shaped(platform, models):
    v1, _ = models
    base = f"http://127.0.0.1:{platform.api_port}/apis/serving.kserve.io/v1beta1/namespaces/team-a/inferenceservices"
    doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
    doc["spec"]["predictor"]["model"]["storageUri"] = str(v1)
    with (
        httpx.Client(headers=platform.headers) as client,
        client.stream("GET", f"{base}?watch=true", timeout=60) as watch,
    ):
        created = client.post(base, json=doc)
        assert created.status_code == 201 and created.json()["metadata"]["namespace"] == "team-a"
        assert created.json()["metadata"]["annotations"]["modelFormat"] == "sklearn"  # defaulted on the way in
        again = client.post(base, json=doc)
        assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
        doc["spec"]["predictor"]["minReplicas"] = 2
        updated = client.put(f"{base}/sklearn-iris", json=doc)
        assert updated.status_code == 200 and updated.json()["metadata"]["generation"] == 2
        bad = json.loads(json.dumps(doc))
        bad["spec"]["predictor"]["minReplicas"] = -1
        refused = client.put(f"{base}/sklearn-iris", json=bad)
        assert refused.status_code == 422 and refused.json()["message"] == "MinReplicas cannot be less than 0."
        listed = client.get(base).json()
        assert listed["kind"] == "InferenceServiceList" and [i["metadata"]["name"] for i in listed["items"]] == [
            "sklearn-iris"
        ]
        assert client.delete(f"{base}/sklearn-iris").json()["status"] == "Success"
        assert client.get(f"{base}/sklearn-iris").status_code == 404
        events = []
        for line in watch.iter_lines():
            events.append(json.loads(line)["type"])
            if events[-1] == "DELETED":
                break
    assert events[0] == "ADDED" and "MODIFIED" in events and events[-1] == "DELETED"
    garbage = httpx.post(base, content=b"{not json", headers={**platform.headers, "content-type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["kind"] == "Status"
    runtimes = f"http://127.0.0.1:{platform.api_port}/apis/serving.kserve.io/v1alpha1/clusterservingruntimes"
    clashing = {  # sklearn v1 at priority 1, as the built-in kserve-sklearnserver
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {"name": "my-sklearn"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 1}],
            "protocolVersions": ["v1"],
            "containers": [{"name": "kserve-container", "image": "example.com/sk:1"}],
        },
    }
    refused = httpx.post(runtimes, json=clashing, headers=platform.headers)
    assert refused.status_code == 422 and refused.json()["message"] == (
        "same priority assigned for the model format sklearn in the clusterservingruntimes kserve-sklearnserver "
        "and my-sklearn"
    )
    assert httpx.get(f"{runtimes}/my-sklearn", headers=platform.headers).status_code == 404  # nothing stored


def test_xgboost_and_lightgbm_samples_select_their_cluster_runtimes(platform, tmp_path):
    from modelplane.samples.iris import train_lightgbm, train_xgboost

    docs = []
    for sample, train in (("xgboost-iris.yaml", train_xgboost), ("lightgbm-iris.yaml", train_lightgbm)):
        doc = yaml.safe_load((DATA / sample).read_text())
        doc["spec"]["predictor"]["model"]["storageUri"] = str(train(tmp_path / sample))
        docs.append(doc)
    path = tmp_path / "boosters.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    cli(platform.home, "apply", "-f", str(path))
    for doc, runtime in zip(docs, ("kserve-xgbserver", "kserve-lgbserver"), strict=True):
        name = doc["metadata"]["name"]
        wait_for(lambda name=name: platform.ready(name), f"{name} to be Ready", timeout=90)
        assert platform.isvc(name)["status"]["clusterServingRuntimeName"] == runtime
        r = httpx.post(f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict", json=IRIS_V1)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2


def test_up_detach_and_down(tmp_path):
    home = tmp_path / "home"
    port, api_port = free_port(), free_port()
    out = cli(home, "up", "--detach", "--port", str(port), "--api-port", str(api_port), "--grpc-port", str(free_port()))
    assert f"gateway http://127.0.0.1:{port}" in out.stdout
    info = json.loads((home / "platform.json").read_text())
    assert alive(info["pid"])
    assert cli(home, "get", "isvc").stdout.split() == GET_COLUMNS
    assert "already up" in cli(home, "up", "--detach", "--port", str(port), "--api-port", str(api_port)).stdout
    assert "modelplane is down" in cli(home, "down").stdout
    assert not alive(info["pid"]) and not (home / "platform.json").exists()
    assert cli(home, "get", "isvc", check=False).returncode == 1  # nothing to talk to, a clear error


def test_the_gateway_forwards_grpc_by_route_metadata_or_host(platform, models, tmp_path):
    import grpc

    from modelplane.grpcproto import inference_pb2 as pb
    from modelplane.grpcproto import inference_pb2_grpc as pb_grpc
    from modelplane.grpcproto.client import decode_response

    v1, _ = models
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, v1)))
    wait_for(lambda: platform.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    req = pb.ModelInferRequest(model_name="sklearn-iris")
    inp = req.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
    inp.contents.fp32_contents.extend([v for row in IRIS_V1["instances"] for v in row])
    with grpc.insecure_channel(f"127.0.0.1:{platform.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for metadata in (
            [("x-modelplane-route", "/serving/default/sklearn-iris")],
            [("host", "sklearn-iris.default.example.com")],
        ):
            reply = stub.ModelInfer(req, metadata=metadata)
            assert decode_response(reply).outputs[0].data.reshape(-1).tolist() == [1, 1]
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(req, metadata=[("x-modelplane-route", "/serving/default/nope")])
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
