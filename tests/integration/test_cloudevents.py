"""CloudEvents binary and structured mode on the V1 data plane, against a real server."""

from __future__ import annotations

import httpx
import orjson
from conftest import IRIS_V1

CE = {
    "ce-specversion": "1.0",
    "ce-id": "36077800-0c23-4f38-a0b4-01f4369f670a",
    "ce-source": "https://example.com",
    "ce-type": "com.example.request",
}


def test_binary_mode_request_gives_binary_mode_response(iris_server):
    r = httpx.post(
        iris_server.http + "/v1/models/sklearn-iris:predict",
        content=orjson.dumps(IRIS_V1),
        headers={**CE, "content-type": "application/json"},
    )
    assert r.status_code == 200
    assert r.json() == {"predictions": [1, 1]}
    assert r.headers["ce-specversion"] == "1.0"
    assert r.headers["ce-source"] == "io.kserve.inference.sklearn-iris"
    assert r.headers["ce-type"] == "io.kserve.inference.response"
    assert r.headers["ce-id"] != CE["ce-id"]
    assert "ce-time" in r.headers


def test_binary_mode_invalid_json_is_400(iris_server):
    r = httpx.post(
        iris_server.http + "/v1/models/sklearn-iris:predict",
        content=b"{not json",
        headers={**CE, "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("Failed to decode or parse binary json cloudevent")


def test_binary_mode_non_json_payload_reaches_model_as_bytes(test_models_server):
    r = httpx.post(
        test_models_server.http + "/v1/models/echo:predict",
        content=b"avro-bytes",
        headers={**CE, "content-type": "application/avro"},
    )
    assert r.status_code == 200
    assert r.json() == "raw:avro-bytes"
    assert r.headers["ce-type"] == "io.kserve.inference.response"


def test_structured_mode(iris_server):
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": "t",
        "time": "2026-01-01T00:00:00Z",
        "data": IRIS_V1,
    }
    r = httpx.post(
        iris_server.http + "/v1/models/sklearn-iris:predict",
        content=orjson.dumps(event),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/cloudevents+json"
    body = r.json()
    assert body["data"] == {"predictions": [1, 1]}
    assert body["specversion"] == "1.0" and body["type"] == "io.kserve.inference.response"
    assert body["id"] != "1"
