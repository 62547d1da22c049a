"""Malformed requests against a real server: each gets a clear 4xx with {"error": ...}, and serving goes on."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest
from conftest import IRIS_V2

IHCL = "inference-header-content-length"


def _post(server, body: bytes, headers: dict | None = None, model: str = "echo") -> httpx.Response:
    return httpx.post(f"{server.http}/v2/models/{model}/infer", content=body, headers=headers or {})


def _tensor(**fields) -> bytes:
    base = {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]}
    base.update(fields)
    return orjson.dumps({"inputs": [{k: v for k, v in base.items() if v is not None}]})


CASES = {
    "malformed json": (b'{"inputs": [', {}),
    "not an object": (b"[1, 2, 3]", {}),
    "no inputs": (b'{"inputs": []}', {}),
    "invalid utf-8": (b'{"inputs": [{"name": "\xff\xfe"}]}', {}),
    "deeply nested json": (b"[" * 100_000 + b"]" * 100_000, {}),
    "deeply nested data": (
        b'{"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":' + b"[" * 200 + b"1" + b"]" * 200 + b"}]}",
        {},
    ),
    "unknown datatype": (_tensor(datatype="FP128"), {}),
    "missing datatype": (_tensor(datatype=None), {}),
    "negative shape": (_tensor(shape=[-2]), {}),
    "huge shape": (_tensor(shape=[2**62, 2**62]), {}),
    "non-integer shape": (_tensor(shape=[2.5]), {}),
    "shape/data mismatch": (_tensor(shape=[3]), {}),
    "ragged data": (_tensor(shape=[2, 2], data=[[1, 2], [3]]), {}),
    "strings in FP32": (_tensor(data=["a", "b"]), {}),
    "overflowing INT8": (_tensor(datatype="INT8", data=[1, 1000]), {}),
    "missing data": (_tensor(data=None), {}),
    "non-string id": (b'{"id": 5, "inputs": [{"name":"a","shape":[1],"datatype":"INT32","data":[1]}]}', {}),
    "bad parameters": (b'{"parameters": 3, "inputs": [{"name":"a","shape":[1],"datatype":"INT32","data":[1]}]}', {}),
    "bytes as numbers": (_tensor(datatype="BYTES", data=[1, 2]), {}),
}


def _binary(size_claimed: int, blob: bytes, shape=(2,), datatype="FP32", ihcl_extra: int = 0) -> tuple[bytes, dict]:
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "shape": list(shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": size_claimed},
                }
            ]
        }
    )
    return head + blob, {IHCL: str(len(head) + ihcl_extra)}


BINARY_CASES = {
    "truncated binary body": _binary(8, b"\x00" * 5),
    "IHCL larger than body": _binary(8, b"\x00" * 8, ihcl_extra=1000),
    "wrong byte count for shape": _binary(12, b"\x00" * 12),
    "trailing bytes": _binary(8, b"\x00" * 12),
    "negative binary size": _binary(-1, b""),
    "truncated BYTES element": _binary(6, b"\x05\x00\x00\x00ab", shape=(1,), datatype="BYTES"),
    "BYTES count mismatch": _binary(6, b"\x02\x00\x00\x00ab", shape=(2,), datatype="BYTES"),
    "non-numeric IHCL": (b"{}", {IHCL: "abc"}),
    "negative IHCL": (b"{}", {IHCL: "-5"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_json_requests(test_models_server, case):
    body, headers = CASES[case]
    r = _post(test_models_server, body, headers)
    assert r.status_code == 400, (case, r.text)
    assert isinstance(r.json()["error"], str) and r.json()["error"]


@pytest.mark.parametrize("case", sorted(BINARY_CASES))
def test_malformed_binary_requests(test_models_server, case):
    body, headers = BINARY_CASES[case]
    r = _post(test_models_server, body, headers)
    assert r.status_code == 400, (case, r.text)
    assert r.json()["error"]


def test_unknown_model(test_models_server):
    r = _post(test_models_server, orjson.dumps(IRIS_V2), model="nope")
    assert (r.status_code, r.json()) == (404, {"error": "Model with name nope does not exist."})


def test_body_over_the_limit_is_413(logs):
    from support import server as srv

    server = srv.start(["Echo:echo", "--max-body-bytes", "1000"], logs, module="support.launch")
    try:
        r = _post(server, _tensor(data=list(range(2))) + b" " * 2000)
        assert r.status_code == 413 and "limit" in r.json()["error"]
        # chunked upload (no Content-Length) is cut off too
        r = httpx.post(f"{server.http}/v2/models/echo/infer", content=iter([b" " * 600, b" " * 600]))
        assert r.status_code == 413
        assert _post(server, _tensor()).status_code == 200
    finally:
        server.stop()


def test_client_that_disconnects_mid_body_does_not_hurt_the_server(test_models_server):
    with socket.create_connection(("127.0.0.1", test_models_server.http_port)) as sock:
        sock.sendall(b'POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"in')
    assert _post(test_models_server, _tensor()).status_code == 200


def test_server_still_serves_after_all_of_that(test_models_server):
    assert test_models_server.alive()
    r = _post(test_models_server, _tensor())
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.0, 2.0]
    assert "Traceback" not in test_models_server.log().split("weights are corrupt")[-1]
