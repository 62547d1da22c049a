"""Server: how V1 `instances` and V2 tensors are merged into one batch and split back, row for row."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from modelplane.protocol.errors import InferenceError
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.responses import to_infer_response


def _offsets(counts: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for n in counts:
        out.append((start, start + n))
        start += n
    return out


class V1Instances:
    """`{"instances": [...]}` payloads; the model must answer `{"predictions": [...]}` with one entry per instance."""

    def rows(self, payload: Any) -> int | None:
        if isinstance(payload, dict) and len(payload) == 1 and isinstance(payload.get("instances"), list):
            return len(payload["instances"]) or None
        return None

    def key(self, payload: Any) -> Hashable:
        return "instances"

    def combine(self, payloads: list[Any]) -> Any:
        return {"instances": [row for p in payloads for row in p["instances"]]}

    def split(self, result: Any, combined: Any, payloads: list[Any], counts: list[int]) -> list[Any]:
        predictions = result.get("predictions") if isinstance(result, dict) else None
        total = sum(counts)
        if predictions is None or len(predictions) != total:
            got = "no predictions" if predictions is None else f"{len(predictions)} predictions"
            raise InferenceError(f"batched model returned {got} for {total} instances")
        extra = {k: v for k, v in result.items() if k != "predictions"}
        return [{"predictions": predictions[a:b], **extra} for a, b in _offsets(counts)]


def _tensor_key(t: Tensor) -> tuple[Any, ...]:
    params = tuple(sorted((k, repr(v)) for k, v in (t.parameters or {}).items() if k != "binary_data_size"))
    return (t.name, t.datatype, tuple(t.shape[1:]), params)


class V2Tensors:
    """InferRequests whose inputs share names, datatypes and all but the first dimension; outputs are cut on it.

    The merged request asks for every output; each caller's requested outputs are picked after the split."""

    def rows(self, request: Any) -> int | None:
        if not isinstance(request, InferRequest) or not request.inputs:
            return None
        first = request.inputs[0].shape
        if not first or first[0] < 1:
            return None
        n = first[0]
        return n if all(t.shape and t.shape[0] == n for t in request.inputs) else None

    def key(self, request: InferRequest) -> Hashable:
        # requested outputs are not part of it: the data plane picks each caller's outputs after the batch
        params = tuple(sorted((k, repr(v)) for k, v in (request.parameters or {}).items() if k != "timeout"))
        return (tuple(_tensor_key(t) for t in request.inputs), params)

    def combine(self, requests: list[Any]) -> Any:
        first = requests[0]
        inputs = []
        for i, t in enumerate(first.inputs):
            data = np.concatenate([r.inputs[i].data for r in requests])
            inputs.append(Tensor(t.name, t.datatype, [data.shape[0], *t.shape[1:]], data, t.parameters))
        return InferRequest(first.model_name, inputs, first.id, first.parameters, None, first.model_version)

    def split(self, result: Any, combined: Any, requests: list[Any], counts: list[int]) -> list[Any]:
        response = to_infer_response(result, combined)
        total = sum(counts)
        for out in response.outputs:
            if not out.shape or out.shape[0] != total:
                raise InferenceError(
                    f"batched model returned output '{out.name}' with shape {out.shape} for {total} rows of input"
                )
        parts = []
        for (a, b), request in zip(_offsets(counts), requests, strict=True):
            outputs = [
                Tensor(o.name, o.datatype, [b - a, *o.shape[1:]], o.data[a:b], o.parameters) for o in response.outputs
            ]
            parts.append(
                InferResponse(
                    model_name=response.model_name,
                    outputs=outputs,
                    id=request.id or new_id(),
                    model_version=response.model_version,
                    parameters=response.parameters,
                )
            )
        return parts


V1 = V1Instances()
V2 = V2Tensors()
