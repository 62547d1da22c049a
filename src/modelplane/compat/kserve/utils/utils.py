"""Compatibility: `kserve.utils.utils` — the payload helpers custom models call, over modelplane's own."""

from __future__ import annotations

from typing import Any

from modelplane.model.payload import predict_input, predict_response
from modelplane.protocol.ids import new_id


def get_predict_input(payload: Any) -> Any:
    """The model input: V1 `instances`/`inputs` as an array (rows of objects as a DataFrame), V2 as its input's
    array (several, or `content_type: pd`, as a DataFrame)."""
    return predict_input(payload)


def get_predict_response(payload: Any, result: Any, model_name: str) -> Any:
    """V1 → `{"predictions": [...]}`; V2 → an InferResponse with `output-0` (or a column per DataFrame column)."""
    return predict_response(payload, result, model_name)


def generate_uuid() -> str:
    return new_id()
