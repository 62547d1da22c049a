"""Protocol core: V2 (Open Inference Protocol) REST codec, JSON and the binary tensor extension."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from modelplane.protocol.codecs.raw import reshape, tensor_from_raw, tensor_to_raw
from modelplane.protocol.datatypes import BINARY_ONLY, check_datatype, shape_size, wire_dtype
from modelplane.protocol.errors import InferenceError, InvalidInput
from modelplane.protocol.types import InferRequest, InferResponse, RequestedOutput, Tensor

_DUMP_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _parameters(value: object, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"'parameters' of {where} must be an object")
    return value


def _flatten_strings(data: object, out: list[Any], where: str) -> None:
    """Nested lists of strings, flattened without recursion (nesting depth is the client's to choose)."""
    stack = [iter([data])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise InvalidInput(f"BYTES data of {where} must be strings, got {type(item).__name__}")


_END = object()


def json_tensor_data(data: object, datatype: str, shape: list[int], count: int, where: str) -> np.ndarray:
    """numpy array from JSON `data` (nested in the tensor's shape or flat)."""
    if datatype in BINARY_ONLY:
        raise InvalidInput(f"Sending {datatype} data via JSON is not supported; use the binary extension ({where})")
    if not isinstance(data, list):
        raise InvalidInput(f"'data' of {where} must be a list")
    if datatype == "BYTES":
        flat: list[Any] = []
        _flatten_strings(data, flat, where)
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            array = np.array(data, dtype=wire_dtype(datatype))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise InvalidInput(f"'data' of {where} is not a valid {datatype} tensor: {exc}") from None
    if array.size != count:
        raise InvalidInput(f"{where} has {array.size} elements but shape {shape} needs {count}")
    return reshape(array, shape, where)


def decode_request(body: bytes, header_length: int | None, model_name: str) -> InferRequest:
    """Parse a V2 infer body; `header_length` is Inference-Header-Content-Length (None: all JSON)."""
    try:
        return _decode_request(body, header_length, model_name)
    except MemoryError:
        raise InvalidInput("the request's tensors do not fit in memory") from None


def _decode_request(body: bytes, header_length: int | None, model_name: str) -> InferRequest:
    view = memoryview(body)
    if header_length is None:
        header_view, blobs_start = view, len(body)
    else:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {header_length} is outside the body of {len(body)} bytes"
            )
        header_view, blobs_start = view[:header_length], header_length
    try:
        doc = orjson.loads(header_view)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Unrecognized request format: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("inference request must be a JSON object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("inference request must have a non-empty 'inputs' list")
    offset = blobs_start
    inputs: list[Tensor] = []
    for item in raw_inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput("each input must be an object with a string 'name'")
        name = item["name"]
        where = f"input '{name}'"
        datatype = check_datatype(item.get("datatype"), where)
        shape = item.get("shape")
        count = shape_size(shape, where)
        params = _parameters(item.get("parameters"), where)
        size = params.get("binary_data_size") if params else None
        if "data" in item:
            if size is not None:
                raise InvalidInput(f"{where} has both 'data' and 'binary_data_size'")
            array = json_tensor_data(item["data"], datatype, shape, count, where)
        elif size is not None:
            if type(size) is not int or size < 0:
                raise InvalidInput(f"'binary_data_size' of {where} must be a non-negative integer")
            if offset + size > len(body):
                raise InvalidInput(f"binary data of {where} runs past the end of the request body")
            array = tensor_from_raw(view[offset : offset + size], datatype, shape, count, where)
            offset += size
        else:
            raise InvalidInput(f"'data' field is missing for {where} for model '{model_name}'")
        inputs.append(Tensor(name, datatype, shape, array, params))
    if offset != len(body):
        raise InvalidInput(f"request body has {len(body) - offset} bytes not claimed by any input")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return InferRequest(
        model_name=model_name,
        inputs=inputs,
        id=request_id,
        parameters=_parameters(doc.get("parameters"), "the request"),
        outputs=_requested_outputs(doc.get("outputs")),
    )


def _requested_outputs(value: object) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list")
    outputs = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput("each requested output must be an object with a string 'name'")
        outputs.append(RequestedOutput(item["name"], _parameters(item.get("parameters"), f"output '{item['name']}'")))
    return outputs


def binary_outputs(request: InferRequest | None, response: InferResponse) -> list[bool]:
    """Per output: send binary? An output's own `binary_data` wins over request-level `binary_data_output`."""
    default = bool(request and request.parameters and request.parameters.get("binary_data_output"))
    own: dict[str, bool] = {}
    if request and request.outputs:
        for out in request.outputs:
            if out.parameters and "binary_data" in out.parameters:
                own[out.name] = bool(out.parameters["binary_data"])
    return [own.get(t.name, default) for t in response.outputs]


def _json_data(tensor: Tensor) -> Any:
    data = tensor.data
    if tensor.datatype == "BYTES":
        try:
            return [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(data).reshape(-1)]
        except UnicodeDecodeError:
            raise InvalidInput(
                f"output '{tensor.name}' holds bytes that are not UTF-8; request it with binary_data"
            ) from None
    return np.asarray(data).reshape(-1)


def encode_response(response: InferResponse, binary: list[bool]) -> tuple[list[bytes | memoryview], int | None]:
    """Body parts of a V2 infer response and its Inference-Header-Content-Length (None when all JSON)."""
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes | memoryview] = []
    for tensor, as_binary in zip(response.outputs, binary, strict=True):
        entry: dict[str, Any] = {
            "name": tensor.name,
            "shape": list(tensor.shape),
            "datatype": tensor.datatype,
        }
        params = dict(tensor.parameters) if tensor.parameters else None
        if as_binary:
            blob = tensor_to_raw(tensor.data, tensor.datatype)
            blobs.append(blob)
            params = params or {}
            params["binary_data_size"] = len(blob)
            entry["parameters"] = params
        else:
            if tensor.datatype in BINARY_ONLY:
                raise InvalidInput(f"{tensor.datatype} output '{tensor.name}' can only be returned as binary data")
            if params:
                entry["parameters"] = params
            entry["data"] = _json_data(tensor)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    doc["outputs"] = outputs
    header = dumps(doc)
    if not blobs:
        return [header], None
    return [header, *blobs], len(header)


def dumps(doc: Any) -> bytes:
    """orjson with numpy support; falls back to plain lists for arrays orjson cannot serialise directly."""
    try:
        return orjson.dumps(doc, option=_DUMP_OPTS)
    except TypeError:
        return orjson.dumps(doc, option=_DUMP_OPTS, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InferenceError("result contains bytes that are not UTF-8") from None
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
