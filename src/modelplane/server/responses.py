"""Server: turning whatever a model returned for a V2 request into an InferResponse."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.protocol.codecs.v2 import json_tensor_data
from modelplane.protocol.datatypes import check_datatype, shape_size
from modelplane.protocol.errors import InferenceError
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor


def to_infer_response(result: Any, request: InferRequest) -> InferResponse:
    """Accept what models return for V2: an InferResponse, a V2-shaped dict, or a bare array (→ output-0)."""
    if isinstance(result, InferResponse):
        response = result
    elif isinstance(result, dict) and isinstance(result.get("outputs"), list):
        response = InferResponse(
            model_name=result.get("model_name", request.model_name),
            outputs=[_dict_tensor(o) for o in result["outputs"]],
            id=result.get("id") or request.id or new_id(),
            model_version=result.get("model_version"),
            parameters=result.get("parameters"),
        )
    elif isinstance(result, (np.ndarray, list)):
        response = InferResponse(model_name=request.model_name, outputs=[Tensor.from_numpy("output-0", result)])
    else:
        raise InferenceError(f"model returned {type(result).__name__}, expected an InferResponse for a V2 request")
    if request.id:
        response.id = request.id
    return response


def _dict_tensor(doc: Any) -> Tensor:
    if not isinstance(doc, dict):
        raise InferenceError("model output must be an object")
    name = str(doc.get("name"))
    datatype = check_datatype(doc.get("datatype"), f"output '{name}'")
    shape = doc.get("shape")
    count = shape_size(shape, f"output '{name}'")
    data = doc.get("data")
    array = data if isinstance(data, np.ndarray) else json_tensor_data(data, datatype, shape, count, f"output '{name}'")
    return Tensor(name, datatype, list(shape), array.reshape(shape), doc.get("parameters"))
