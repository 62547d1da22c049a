"""Server: the protocol-neutral data plane (health, metadata, infer, explain, repository); no HTTP, no gRPC."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelplane import __version__
from modelplane.protocol.codecs.v2 import json_tensor_data
from modelplane.protocol.datatypes import check_datatype, shape_size
from modelplane.protocol.errors import InferenceError, InvalidInput, ModelNotFound
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.registry import Entry, ModelRegistry

EXTENSIONS = ["model_repository_extension", "binary_tensor_data"]


class DataPlane:
    def __init__(self, registry: ModelRegistry, server_name: str = "modelplane") -> None:
        self.registry = registry
        self.server_name = server_name

    # --- health and metadata -------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return self.registry.all_ready()

    def metadata(self) -> dict[str, Any]:
        return {"name": self.server_name, "version": __version__, "extensions": EXTENSIONS}

    def _check_version(self, name: str, version: str | None) -> None:
        if version and version != self.registry.entry(name).model.version:
            raise ModelNotFound(name, version)

    def model_ready(self, name: str, version: str | None = None) -> bool:
        self._check_version(name, version)
        return self.registry.entry(name).model.ready

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        self._check_version(name, version)
        model = self.registry.entry(name).model
        return {
            "name": name,
            "versions": [model.version] if model.version else [],
            "platform": model.platform,
            "inputs": [t.to_dict() for t in model.input_metadata()],
            "outputs": [t.to_dict() for t in model.output_metadata()],
        }

    # --- inference -------------------------------------------------------------------------------------
    async def infer(
        self, request: InferRequest, headers: Mapping[str, str], entry: Entry | None = None
    ) -> tuple[InferResponse, dict[str, str]]:
        """Run a V2 request; transports that already looked the model up pass its `entry`."""
        entry = entry or self.registry.ready_entry(request.model_name)
        if request.model_version:
            self._check_version(request.model_name, request.model_version)
        result, out_headers = await entry.pipeline("predict", request, headers)
        response = to_infer_response(result, request)
        if request.outputs:
            response.outputs = select_outputs(response, request)
        return response, out_headers

    async def predict_v1(
        self, name: str, payload: Any, headers: Mapping[str, str], verb: str = "predict", entry: Entry | None = None
    ) -> tuple[Any, dict[str, str]]:
        """Run a V1 predict or explain; transports that already looked the model up pass its `entry`."""
        entry = entry or self.registry.ready_entry(name)
        if isinstance(payload, dict) and "instances" in payload and not isinstance(payload["instances"], list):
            raise InvalidInput('Expected "instances" to be a list')
        return await entry.pipeline(verb, payload, headers)

    # --- repository extension --------------------------------------------------------------------------
    async def load(self, name: str) -> None:
        await self.registry.load(name)

    async def unload(self, name: str) -> None:
        await self.registry.unload(name)

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        return self.registry.index(ready_only)


def select_outputs(response: InferResponse, request: InferRequest) -> list[Tensor]:
    """Only the requested outputs, in request order (done here, centrally, not by each model)."""
    by_name = {t.name: t for t in response.outputs}
    selected = []
    for wanted in request.outputs or ():
        tensor = by_name.get(wanted.name)
        if tensor is None:
            raise InvalidInput(f"Unexpected inference output '{wanted.name}' for model '{request.model_name}'")
        selected.append(tensor)
    return selected


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
