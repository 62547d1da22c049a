"""REST V1 protocol against a real server: routes, bodies, status codes, raw bytes, explain."""

from __future__ import annotations

import httpx
import orjson
from conftest import IRIS_V1


def test_liveness_and_model_list(iris_server):
    assert httpx.get(iris_server.http + "/").json() == {"status": "alive"}
    assert httpx.get(iris_server.http + "/v1/models").json() == {"models": ["sklearn-iris"]}


def test_model_ready_and_unknown(iris_server):
    r = httpx.get(iris_server.http + "/v1/models/sklearn-iris")
    assert (r.status_code, r.json()) == (200, {"name": "sklearn-iris", "ready": True})
    r = httpx.get(iris_server.http + "/v1/models/nope")
    assert r.status_code == 404
    assert r.json() == {"error": "Model with name nope does not exist."}


def test_predict_iris(iris_server):
    r = httpx.post(iris_server.http + "/v1/models/sklearn-iris:predict", json=IRIS_V1)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"predictions": [1, 1]}


def test_predict_without_content_type_is_json(iris_server):
    r = httpx.post(iris_server.http + "/v1/models/sklearn-iris:predict", content=orjson.dumps(IRIS_V1))
    assert r.json() == {"predictions": [1, 1]}


def test_predict_inputs_columnar_key(iris_server):
    r = httpx.post(iris_server.http + "/v1/models/sklearn-iris:predict", json={"inputs": IRIS_V1["instances"]})
    assert r.json() == {"predictions": [1, 1]}


def test_instances_must_be_a_list(iris_server):
    r = httpx.post(iris_server.http + "/v1/models/sklearn-iris:predict", json={"instances": "abc"})
    assert r.status_code == 400
    assert r.json() == {"error": 'Expected "instances" to be a list'}


def test_malformed_json_is_400(iris_server):
    r = httpx.post(
        iris_server.http + "/v1/models/sklearn-iris:predict",
        content=b'{"instances": [1,',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("Unrecognized request format")


def test_inputs_the_model_can_tell_are_wrong_are_client_errors(iris_server):
    url = iris_server.http + "/v1/models/sklearn-iris:predict"
    r = httpx.post(url, json={"instances": [[1, 2]]})
    assert r.status_code == 400 and "expects 4 features per row, the request has 2" in r.json()["error"]
    import numpy as np

    blob = np.array([[np.nan, 1, 2, 3]], dtype="<f4").tobytes()  # NaN has no JSON form: the binary extension
    header = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}'
    r = httpx.post(
        iris_server.http + "/v2/models/sklearn-iris/infer",
        content=header + blob,
        headers={"inference-header-content-length": str(len(header))},
    )
    assert r.status_code == 400 and "NaN" in r.json()["error"]
    r = httpx.post(url, json={"instances": [["a", "b", "c", "d"]]})
    assert r.status_code == 400, r.text
    form = {"content-type": "application/x-www-form-urlencoded"}  # what `curl -d` sends: say which header to set
    r = httpx.post(url, content=b'{"instances": [[1, 2, 3, 4]]}', headers=form)
    assert r.status_code == 400 and "Content-Type: application/json" in r.json()["error"]
    assert httpx.post(url, json=IRIS_V1).status_code == 200


def test_unknown_route_and_wrong_method(iris_server):
    r = httpx.get(iris_server.http + "/v3/whatever")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(iris_server.http + "/v1/models/sklearn-iris:predict")
    assert r.status_code == 405


def test_non_json_content_type_reaches_model_as_raw_bytes(test_models_server):
    r = httpx.post(
        test_models_server.http + "/v1/models/echo:predict",
        content=b"\x00\x01binary",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert r.content == b"raw:\x00\x01binary"


def test_explain(test_models_server):
    r = httpx.post(test_models_server.http + "/v1/models/explainer:explain", json={"instances": [[1]]})
    assert r.json() == {"predictions": [1], "explanations": [{"feature": 0, "weight": 0.5}]}


def test_explain_without_explainer_is_501(test_models_server):
    r = httpx.post(test_models_server.http + "/v1/models/echo:explain", json={"instances": [[1]]})
    assert r.status_code == 501
    assert r.json() == {"error": "Could not find explainer_host."}


def test_async_stages_and_response_headers(test_models_server):
    r = httpx.post(
        test_models_server.http + "/v1/models/adder:predict",
        json={"instances": [[1, 2]]},
        headers={"x-request-id": "abc"},
    )
    assert r.json() == {"predictions": [[4.0, 6.0]]}
    assert r.headers["x-model-stage"] == "predict"
    assert r.headers["x-request-echo"] == "abc"


def test_model_exception_is_500_with_error_body(test_models_server):
    r = httpx.post(test_models_server.http + "/v1/models/failing:predict", json={"instances": [1]})
    assert r.status_code == 500
    assert r.json() == {"error": "RuntimeError : boom!"}


def test_not_ready_model_is_503(test_models_server):
    r = httpx.get(test_models_server.http + "/v1/models/broken")
    assert r.status_code == 503
    r = httpx.post(test_models_server.http + "/v1/models/broken:predict", json={"instances": [1]})
    assert r.status_code == 503
    assert "weights are corrupt" in r.json()["error"]
