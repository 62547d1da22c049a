"""Model API: turning V1/V2 payloads into model inputs and model results back into protocol responses."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.protocol.errors import InvalidInput, NotImplementedByModel
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor


def is_dataframe(value: object) -> bool:
    return type(value).__module__.startswith("pandas") and type(value).__name__ == "DataFrame"


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise NotImplementedByModel(
            "dict instances and content_type pd need pandas, which is not installed: pip install 'modelplane[sklearn]'"
        ) from None
    return pd


def to_dataframe(request: InferRequest) -> Any:
    """All inputs as one pandas DataFrame, one column per input (V2 `content_type: pd`)."""
    pd = _pandas()

    columns: dict[str, Any] = {}
    for tensor in request.inputs:
        data = tensor.data
        if data.ndim > 1 and data.shape[-1] == 1:
            data = data.reshape(data.shape[0])
        if data.ndim != 1:
            raise InvalidInput(f"input '{tensor.name}' must be one-dimensional to become a DataFrame column")
        if data.dtype == object:
            data = [x.decode() if isinstance(x, bytes) else x for x in data]
        columns[tensor.name] = data
    try:
        return pd.DataFrame(columns)
    except ValueError as exc:
        raise InvalidInput(f"inputs cannot form one DataFrame: {exc}") from None


def _rows(tensor: Tensor) -> np.ndarray:
    data = tensor.data
    return data.reshape(data.shape[0], -1) if data.ndim != 1 else data.reshape(-1, 1)


def v2_input(request: InferRequest) -> Any:
    """Model input for a V2 request: one input → its array; `content_type: pd` or mixed types → DataFrame;
    several numeric inputs → their columns side by side (never silently dropped)."""
    params = request.parameters or {}
    if params.get("content_type") == "pd":
        return to_dataframe(request)
    if len(request.inputs) == 1:
        return request.inputs[0].data
    if any(t.datatype == "BYTES" for t in request.inputs):
        return to_dataframe(request)
    rows = {t.data.shape[0] if t.data.ndim else 1 for t in request.inputs}
    if len(rows) != 1:
        raise InvalidInput("all inputs must have the same number of rows to be used together")
    return np.column_stack([_rows(t) for t in request.inputs])


def v1_input(payload: Any) -> Any:
    """Model input for a V1 body: `instances` (rows) or `inputs` (columnar); dict rows become a DataFrame."""
    if not isinstance(payload, dict):
        raise InvalidInput("V1 request body must be a JSON object with 'instances' or 'inputs'")
    data = payload.get("instances", payload.get("inputs"))
    if data is None:
        raise InvalidInput('Expected "instances" or "inputs" in the request body')
    if not isinstance(data, list):
        raise InvalidInput('Expected "instances" to be a list')
    if data and isinstance(data[0], dict):
        return _pandas().DataFrame(data)
    if data and isinstance(data[0], str):
        return data
    try:
        return np.asarray(data)
    except ValueError as exc:
        raise InvalidInput(f"instances do not form a tensor: {exc}") from None


def predict_input(payload: Any) -> Any:
    return v2_input(payload) if isinstance(payload, InferRequest) else v1_input(payload)


def predict_response(payload: Any, result: Any, model_name: str) -> Any:
    """V1 → `{"predictions": [...]}`; V2 → one output `output-0` (or one per DataFrame column)."""
    if not isinstance(payload, InferRequest):
        if is_dataframe(result):
            return {"predictions": result.to_dict(orient="records")}
        return {"predictions": np.asarray(result).tolist() if not isinstance(result, list) else result}
    if is_dataframe(result):
        outputs = [Tensor.from_numpy(str(col), result[col].to_numpy()) for col in result.columns]
    else:
        outputs = [Tensor.from_numpy("output-0", result)]
    return InferResponse(model_name=model_name, outputs=outputs, id=payload.id or new_id())
