"""ONNX and PyTorch models served by `modelplane serve` from one repository directory, driven by the unmodified
tritonclient (V2 JSON and binary over HTTP, gRPC) and plain HTTP (V1, V2 JSON); wrong inputs answered 400 /
INVALID_ARGUMENT; and a KServe-format InferenceService with `modelFormat: onnx` served through the gateway."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import yaml
from support import server as srv
from support import tensor_models as tm
from support.observe import wait_for as wait_until
from support.platform import DATA, applied, cli
from tritonclient.utils import InferenceServerException

X = np.random.default_rng(3).random((3, 4), dtype=np.float32)
MLPS = {"mlp-onnx": "x", "mlp-pt": "input-0", "mlp-pt2": "input"}  # model -> its input's name


@pytest.fixture(scope="module")
def server(tmp_path_factory, logs):
    repo = tmp_path_factory.mktemp("tensor-repo")
    tm.onnx_mlp(repo / "mlp-onnx")
    tm.torchscript_mlp(repo / "mlp-pt")
    tm.exported_mlp(repo / "mlp-pt2")
    tm.onnx_two_by_two(repo / "two")
    running = srv.start(["serve", "--model-dir", str(repo), "--intra_op_threads", "1"], logs)
    yield running
    running.stop()


@pytest.mark.parametrize("model", sorted(MLPS))
def test_v1_and_v2_json_over_http(server, model):
    v1 = httpx.post(f"{server.http}/v1/models/{model}:predict", json={"instances": X.tolist()})
    assert v1.status_code == 200 and np.allclose(v1.json()["predictions"], tm.mlp(X), atol=1e-5)
    body = {"inputs": [{"name": MLPS[model], "shape": [3, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
    v2 = httpx.post(f"{server.http}/v2/models/{model}/infer", json=body).json()["outputs"][0]
    assert v2["datatype"] == "FP32" and v2["shape"] == [3, 3]
    assert np.allclose(np.asarray(v2["data"]).reshape(3, 3), tm.mlp(X), atol=1e-5)


@pytest.mark.parametrize("model", sorted(MLPS))
@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_binary_and_json(server, model, binary):
    with httpclient.InferenceServerClient(server.http_hostport) as client:
        inp = httpclient.InferInput(MLPS[model], list(X.shape), "FP32")
        inp.set_data_from_numpy(X, binary_data=binary)
        result = client.infer(model, [inp])
        name = result.get_response()["outputs"][0]["name"]
        assert np.allclose(result.as_numpy(name), tm.mlp(X), atol=1e-5)


def test_grpc_several_named_inputs_and_outputs_and_metadata(server):
    a = np.array([[1, 2], [3, 4]], dtype=np.int64)
    b = np.array([[5, 6], [7, 8]], dtype=np.int64)
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inputs = []
        for name, value in (("a", a), ("b", b)):
            inp = grpcclient.InferInput(name, [2, 2], "INT64")
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        result = client.infer("two", inputs, outputs=[grpcclient.InferRequestedOutput("product")])
        assert result.as_numpy("product").tolist() == (a * b).tolist() and result.as_numpy("sum") is None
        meta = client.get_model_metadata("two", as_json=True)
    assert meta["platform"] == "onnxruntime_onnx"
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("a", "INT64", ["-1", "2"]),
        ("b", "INT64", ["-1", "2"]),
    ]
    assert [o["name"] for o in meta["outputs"]] == ["sum", "product"]
    with httpclient.InferenceServerClient(server.http_hostport) as client:
        meta = client.get_model_metadata("mlp-pt2")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "the model expects FP32"),
        ([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "the model expects [-1, 4]"),
        ([{"name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "unexpected input 'y'"),
    ],
)
def test_wrong_inputs_get_400_over_rest_and_invalid_argument_over_grpc(server, inputs, message):
    r = httpx.post(f"{server.http}/v2/models/mlp-onnx/infer", json={"inputs": inputs})
    assert r.status_code == 400 and message in r.json()["error"]
    spec = inputs[0]
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput(spec["name"], spec["shape"], spec["datatype"])
        dtype = np.float64 if spec["datatype"] == "FP64" else np.float32
        inp.set_data_from_numpy(np.asarray(spec["data"], dtype=dtype).reshape(spec["shape"]))
        with pytest.raises(InferenceServerException) as refused:
            client.infer("mlp-onnx", [inp])
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT" and message in refused.value.message()
    shape = httpx.post(f"{server.http}/v1/models/mlp-pt:predict", json={"instances": [[1, 2, 3]]})
    assert shape.status_code == 400 and "the model refused the input" in shape.json()["error"]


def isvc(name: str, fmt: str, uri: Path, protocol: str | None = None) -> dict:
    model = {
        "modelFormat": {"name": fmt},
        "storageUri": str(uri),
        **({"protocolVersion": protocol} if protocol else {}),
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": model}},
    }


@pytest.mark.timeout(360)
def test_kserve_isvcs_of_every_format_select_a_runtime_and_serve_through_the_gateway(tmp_path):
    """KServe-format InferenceServices, one per framework: runtime selection by modelFormat and protocol picks
    KServe's runtime names (served by modelplane's runtimes) and each answers through the gateway."""
    pmml = Path(__file__).resolve().parents[1] / "data" / "pmml" / "regression.pmml"
    (tmp_path / "pmml").mkdir()
    (tmp_path / "pmml" / "model.pmml").write_bytes(pmml.read_bytes())
    doc = yaml.safe_load((DATA / "onnx-style.yaml").read_text())  # KServe's ONNX sample, as published
    doc["spec"]["predictor"]["model"]["storageUri"] = str(tm.onnx_mlp(tmp_path / "onnx").parent)
    manifests = [
        doc,
        isvc("torch", "pytorch", tm.torchscript_mlp(tmp_path / "pt").parent),
        isvc("tf", "tensorflow", tm.saved_model(tmp_path / "tf")),
        isvc("pmml", "pmml", tmp_path / "pmml"),
        isvc("minilm", "huggingface", shutil.copytree(tm.minilm(), tmp_path / "minilm")),  # within the file roots
    ]
    with applied(tmp_path, manifests) as plat:
        names = ["style-sample", "torch", "tf", "pmml", "minilm"]
        wait_until(lambda: all(plat.ready(n) for n in names), "every InferenceService Ready", timeout=240)

        def v1(name: str, instances: list) -> list:
            r = httpx.post(
                f"{plat.gateway}/serving/default/{name}/v1/models/{name}:predict", json={"instances": instances}
            )
            assert r.status_code == 200, r.text
            return r.json()["predictions"]

        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
        url = f"{plat.gateway}/serving/default/style-sample/v2/models/style-sample/infer"
        out = httpx.post(url, json=body).json()["outputs"][0]
        assert np.allclose(np.asarray(out["data"]).reshape(3, 3), tm.mlp(X), atol=1e-5)
        assert np.allclose(v1("torch", X.tolist()), tm.mlp(X), atol=1e-5)
        assert np.allclose(v1("tf", X.tolist()), tm.mlp(X), atol=1e-5)
        assert v1("pmml", [[1, 1]]) == [{"y": 6.0}]
        assert np.asarray(v1("minilm", ["hello there"])).shape == (1, 384)
        selected = {
            n: cli(plat.home, "get", "isvc", n, "-o", "yaml").stdout
            for n in ("style-sample", "torch", "tf", "pmml", "minilm")
        }
        assert "kserve-tritonserver" in selected["style-sample"]  # onnx: KServe's Triton runtime, served by ours
        assert "kserve-torchserve" in selected["torch"]
        assert "kserve-tensorflow-serving" in selected["tf"]  # v1: TF Serving's; v2 would pick Triton's
        assert "kserve-pmmlserver" in selected["pmml"]
        assert "kserve-huggingfaceserver" in selected["minilm"]


def test_a_hugging_face_encoder_over_v1_v2_and_grpc(logs):
    running = srv.start(["serve", "--model-dir", str(tm.minilm()), "--model-name", "minilm"], logs)
    try:
        texts = ["A man is eating food.", "A man is eating a piece of bread."]
        v1 = httpx.post(f"{running.http}/v1/models/minilm:predict", json={"instances": texts})
        vectors = np.asarray(v1.json()["predictions"])
        assert vectors.shape == (2, 384) and vectors[0] @ vectors[1] > 0.5
        body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
        out = httpx.post(f"{running.http}/v2/models/minilm/infer", json=body).json()["outputs"][0]
        assert out["shape"] == [2, 384] and np.allclose(np.asarray(out["data"]).reshape(2, 384), vectors, atol=1e-5)
        with grpcclient.InferenceServerClient(running.grpc) as client:
            inp = grpcclient.InferInput("text", [2], "BYTES")
            inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))
            assert np.allclose(client.infer("minilm", [inp]).as_numpy("output-0"), vectors, atol=1e-5)
        refused = httpx.post(f"{running.http}/v1/models/minilm:predict", json={"instances": [1, 2]})
        assert refused.status_code == 400 and "list of strings" in refused.json()["error"]
    finally:
        running.stop()
