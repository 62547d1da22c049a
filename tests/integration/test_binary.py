"""V2 binary tensor extension over REST against a real server: exact bytes, precedence, zero-copy paths."""

from __future__ import annotations

import struct

import httpx
import numpy as np
import orjson

IHCL = "inference-header-content-length"


def binary_request(inputs: list[tuple[str, str, list[int], bytes]], **extra) -> tuple[bytes, int]:
    header = {
        "inputs": [
            {"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(b)}} for n, d, s, b in inputs
        ],
        **extra,
    }
    head = orjson.dumps(header)
    return head + b"".join(b for *_, b in inputs), len(head)


def split(response: httpx.Response) -> tuple[dict, bytes]:
    n = int(response.headers[IHCL])
    return orjson.loads(response.content[:n]), response.content[n:]


def test_binary_in_json_out_without_content_type(test_models_server):
    data = np.arange(8, dtype="<f4")
    body, n = binary_request([("a", "FP32", [2, 4], data.tobytes())])
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", content=body, headers={IHCL: str(n)})
    assert r.status_code == 200
    assert IHCL not in r.headers
    assert r.json()["outputs"][0]["data"] == data.tolist()


def test_binary_data_output_makes_every_output_binary(test_models_server):
    body = {
        "inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]}],
        "parameters": {"binary_data_output": True},
    }
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body)
    header, blob = split(r)
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    assert "data" not in header["outputs"][0]
    assert blob == bytes.fromhex("0000803f00000040")
    assert int(r.headers["content-length"]) == len(r.content)


def test_output_binary_data_false_overrides_binary_data_output(test_models_server):
    body = {
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "INT32", "data": [5]},
            {"name": "b", "shape": [1], "datatype": "INT32", "data": [6]},
        ],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "a_out", "parameters": {"binary_data": False}}, {"name": "b_out"}],
    }
    header, blob = split(httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body))
    a, b = header["outputs"]
    assert a["data"] == [5] and "parameters" not in a
    assert b["parameters"] == {"binary_data_size": 4} and blob == struct.pack("<i", 6)


def test_per_output_binary_data_without_request_default(test_models_server):
    body = {
        "inputs": [
            {"name": "a", "shape": [1], "datatype": "INT32", "data": [5]},
            {"name": "b", "shape": [1], "datatype": "INT32", "data": [6]},
        ],
        "outputs": [{"name": "a_out"}, {"name": "b_out", "parameters": {"binary_data": True}}],
    }
    header, blob = split(httpx.post(test_models_server.http + "/v2/models/echo/infer", json=body))
    assert header["outputs"][0]["data"] == [5]
    assert blob == struct.pack("<i", 6)


def test_bytes_tensors_stay_raw_bytes(test_models_server):
    jpeg_like = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\xfe"  # not UTF-8
    elements = struct.pack("<I", len(jpeg_like)) + jpeg_like + struct.pack("<I", 2) + b"ok"
    body, n = binary_request([("img", "BYTES", [2], elements)], parameters={"binary_data_output": True})
    r = httpx.post(
        test_models_server.http + "/v2/models/echo/infer",
        content=body,
        headers={IHCL: str(n), "content-type": "application/octet-stream"},
    )
    header, blob = split(r)
    assert header["outputs"][0]["datatype"] == "BYTES"
    assert blob == elements


def test_non_utf8_bytes_as_json_output_is_a_clear_400(test_models_server):
    elements = struct.pack("<I", 2) + b"\xff\xfe"
    body, n = binary_request([("img", "BYTES", [1], elements)])
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", content=body, headers={IHCL: str(n)})
    assert r.status_code == 400
    assert "binary_data" in r.json()["error"]


def test_fp16_and_bf16_binary_round_trip(test_models_server):
    half = np.array([1.5, -2.0], dtype="<f2")
    bf16 = (np.array([1.0, 3.0], dtype="<f4").view("<u4") >> 16).astype("<u2")
    body, n = binary_request(
        [("h", "FP16", [2], half.tobytes()), ("b", "BF16", [2], bf16.tobytes())],
        parameters={"binary_data_output": True},
    )
    header, blob = split(
        httpx.post(test_models_server.http + "/v2/models/echo/infer", content=body, headers={IHCL: str(n)})
    )
    assert [o["datatype"] for o in header["outputs"]] == ["FP16", "BF16"]
    assert blob == half.tobytes() + bf16.tobytes()


def test_fp16_output_requested_as_json_is_400(test_models_server):
    half = np.array([1.5], dtype="<f2")
    body, n = binary_request([("h", "FP16", [1], half.tobytes())])
    r = httpx.post(test_models_server.http + "/v2/models/echo/infer", content=body, headers={IHCL: str(n)})
    assert r.status_code == 400 and "binary" in r.json()["error"]


def test_mixed_json_and_binary_inputs(test_models_server):
    header = {
        "inputs": [
            {"name": "j", "shape": [1], "datatype": "INT64", "data": [9]},
            {"name": "b", "shape": [2], "datatype": "UINT8", "parameters": {"binary_data_size": 2}},
        ]
    }
    head = orjson.dumps(header)
    r = httpx.post(
        test_models_server.http + "/v2/models/echo/infer", content=head + b"\x03\x04", headers={IHCL: str(len(head))}
    )
    assert [o["data"] for o in r.json()["outputs"]] == [[9], [3, 4]]


def test_large_fp32_tensor_round_trip(test_models_server):
    data = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)  # 4 MiB
    body, n = binary_request([("t", "FP32", [1024, 1024], data.tobytes())], parameters={"binary_data_output": True})
    header, blob = split(
        httpx.post(test_models_server.http + "/v2/models/echo/infer", content=body, headers={IHCL: str(n)}, timeout=30)
    )
    assert header["outputs"][0]["parameters"]["binary_data_size"] == data.nbytes
    assert np.array_equal(np.frombuffer(blob, dtype="<f4").reshape(1024, 1024), data)
