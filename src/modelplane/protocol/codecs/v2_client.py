"""Protocol core: the client side of V2 REST JSON — encode an InferRequest, decode an infer response (used by
transformers that forward to a predictor)."""

from __future__ import annotations

from typing import Any

import orjson

from modelplane.protocol.codecs.v2 import _json_data, dumps, json_tensor_data
from modelplane.protocol.datatypes import check_datatype, shape_size
from modelplane.protocol.errors import InferenceError
from modelplane.protocol.types import InferRequest, InferResponse, Tensor


def encode_request(request: InferRequest) -> bytes:
    inputs = []
    for t in request.inputs:
        entry: dict[str, Any] = {"name": t.name, "shape": list(t.shape), "datatype": t.datatype, "data": _json_data(t)}
        if t.parameters:
            entry["parameters"] = t.parameters
        inputs.append(entry)
    doc: dict[str, Any] = {"inputs": inputs}
    if request.id:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    if request.outputs:
        doc["outputs"] = [
            {"name": o.name, **({"parameters": o.parameters} if o.parameters else {})} for o in request.outputs
        ]
    return dumps(doc)


def decode_response(body: bytes) -> InferResponse:
    """A V2 JSON infer response (no binary outputs) as an InferResponse."""
    try:
        doc = orjson.loads(body)
        outputs = []
        for o in doc["outputs"]:
            datatype = check_datatype(o["datatype"], f"output '{o['name']}'")
            shape = list(o["shape"])
            count = shape_size(shape, f"output '{o['name']}'")
            data = json_tensor_data(o["data"], datatype, shape, count, f"output '{o['name']}'")
            outputs.append(Tensor(o["name"], datatype, shape, data.reshape(shape), o.get("parameters")))
        return InferResponse(
            doc.get("model_name", ""), outputs, doc.get("id") or "", doc.get("model_version"), doc.get("parameters")
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise InferenceError(f"the predictor answered an unreadable V2 response: {exc}") from exc
