"""REST V2 (Open Inference Protocol) against a real server: health, metadata, infer, versions, repository."""

from __future__ import annotations

import httpx
import orjson
import pytest
from conftest import IRIS_V2


def test_server_health_and_metadata(iris_server):
    assert httpx.get(iris_server.http + "/v2/health/live").json() == {"live": True}
    assert httpx.get(iris_server.http + "/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(iris_server.http + "/v2").json()
    assert meta["name"] == "modelplane"
    assert set(meta["extensions"]) == {"model_repository_extension", "binary_tensor_data"}


def test_model_metadata_and_ready(iris_server):
    r = httpx.get(iris_server.http + "/v2/models/sklearn-iris")
    assert r.json() == {"name": "sklearn-iris", "versions": [], "platform": "", "inputs": [], "outputs": []}
    assert httpx.get(iris_server.http + "/v2/models/sklearn-iris/ready").json() == {
        "name": "sklearn-iris",
        "ready": True,
    }
    assert httpx.get(iris_server.http + "/v2/models/nope/ready").status_code == 404
    assert httpx.get(iris_server.http + "/v2/models/nope").status_code == 404


def test_infer_iris(iris_server):
    r = httpx.post(iris_server.http + "/v2/models/sklearn-iris/infer", json={**IRIS_V2, "id": "req-1"})
    assert r.status_code == 200
    assert r.json() == {
        "model_name": "sklearn-iris",
        "id": "req-1",
        "outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [1, 1]}],
    }


def test_infer_generates_an_id_when_none_given(iris_server):
    r = httpx.post(iris_server.http + "/v2/models/sklearn-iris/infer", json=IRIS_V2)
    assert len(r.json()["id"]) == 36


def test_flat_data_is_accepted(iris_server):
    body = {
        "inputs": [
            {"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6]}
        ]
    }
    assert httpx.post(iris_server.http + "/v2/models/sklearn-iris/infer", json=body).json()["outputs"][0]["data"] == [
        1,
        1,
    ]


def test_json_body_without_content_type_is_json(iris_server):
    r = httpx.post(iris_server.http + "/v2/models/sklearn-iris/infer", content=orjson.dumps(IRIS_V2))
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1, 1]


def test_versioned_routes(test_models_server):
    base = test_models_server.http + "/v2/models/echo"
    assert httpx.get(base + "/versions/1").json()["versions"] == ["1"]
    assert httpx.get(base + "/versions/1/ready").json() == {"name": "echo", "ready": True}
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [7]}]}
    r = httpx.post(base + "/versions/1/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [7]
    for path in ("/versions/2", "/versions/2/ready"):
        assert httpx.get(base + path).status_code == 404
    r = httpx.post(base + "/versions/2/infer", json=body)
    assert r.status_code == 404
    assert r.json() == {"error": "Model with name echo and version 2 does not exist."}


def test_model_metadata_from_model(test_models_server):
    meta = httpx.get(test_models_server.http + "/v2/models/echo").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "x_out", "datatype": "FP32", "shape": [-1, 4]}]


def test_server_not_ready_while_any_model_is_not(test_models_server):
    r = httpx.get(test_models_server.http + "/v2/health/ready")
    assert r.status_code == 503
    assert r.json()["ready"] is False
    r = httpx.get(test_models_server.http + "/v2/models/broken/ready")
    assert (r.status_code, r.json()) == (503, {"name": "broken", "ready": False})


def test_requested_outputs_are_filtered_and_ordered_by_the_server(test_models_server):
    body = {
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "INT32", "data": [1]},
            {"name": "b", "shape": [1], "datatype": "INT32", "data": [2]},
        ],
        "outputs": [{"name": "b_out"}, {"name": "a_out"}],
    }
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body)
    assert [o["name"] for o in r.json()["outputs"]] == ["b_out", "a_out"]
    body["outputs"] = [{"name": "a_out"}]
    assert [
        o["name"] for o in httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body).json()["outputs"]
    ] == ["a_out"]


def test_unknown_requested_output_is_400(test_models_server):
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}], "outputs": [{"name": "nope"}]}
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": "Unexpected inference output 'nope' for model 'echo'"}


def test_response_parameters_and_nested_data_flattened(test_models_server):
    body = {"inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [[1.5, 2], [3, 4]]}]}
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body).json()
    assert r["parameters"] == {"echoed": 1}
    assert r["outputs"] == [{"name": "a_out", "shape": [2, 2], "datatype": "FP64", "data": [1.5, 2.0, 3.0, 4.0]}]


@pytest.mark.parametrize(
    "datatype,data",
    [("BOOL", [True, False]), ("BYTES", ["héllo", "x"]), ("UINT64", [0, 2**64 - 1]), ("INT8", [-128, 127])],
)
def test_json_datatypes_round_trip(test_models_server, datatype, data):
    body = {"inputs": [{"name": "a", "shape": [2], "datatype": datatype, "data": data}]}
    out = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body).json()["outputs"][0]
    assert (out["datatype"], out["data"]) == (datatype, data)


def test_fp16_in_json_is_400(test_models_server):
    body = {"inputs": [{"name": "a", "shape": [1], "datatype": "FP16", "data": [1.0]}]}
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body)
    assert r.status_code == 400 and "FP16" in r.json()["error"]


def test_single_model_server_unload_and_reload(iris_server):
    base = iris_server.http + "/v2/repository"
    assert httpx.post(base + "/index").json() == [
        {"name": "sklearn-iris", "version": "", "state": "READY", "reason": ""}
    ]
    r = httpx.post(base + "/models/sklearn-iris/unload")
    assert (r.status_code, r.json()) == (200, {"name": "sklearn-iris", "unload": True})
    assert httpx.get(iris_server.http + "/v2/models/sklearn-iris/ready").status_code == 404
    assert httpx.post(base + "/models/sklearn-iris/unload").status_code == 404
    assert httpx.post(base + "/models/nope/load").status_code == 404
    r = httpx.post(base + "/models/sklearn-iris/load")
    assert (r.status_code, r.json()) == (200, {"name": "sklearn-iris", "load": True})
    r = httpx.post(iris_server.http + "/v2/models/sklearn-iris/infer", json=IRIS_V2)
    assert r.json()["outputs"][0]["data"] == [1, 1]
