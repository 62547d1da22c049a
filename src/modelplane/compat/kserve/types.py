"""Compatibility: KServe's request/response classes as constructors of modelplane's protocol types — the objects
are modelplane's (`isinstance` works both ways), built from KServe's argument names and order."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelplane.protocol import types as core


class _Alias(type):
    """A class whose instances are the core type's: construction returns a core object, isinstance checks it."""

    _core: type

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, cls._core)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls._core)


def _tensor(name: str, shape: list[int], datatype: str, data: Any, parameters: dict[str, Any] | None) -> core.Tensor:
    if data is None:
        array = np.empty(0, dtype=np.float32)
    elif datatype == "BYTES":
        array = np.asarray(data, dtype=object)
    else:
        array = np.asarray(data)
    if array.size and list(array.shape) != list(shape):
        array = array.reshape(shape)
    return core.Tensor(name, datatype, list(shape), array, parameters)


class InferInput(metaclass=_Alias):
    """KServe's `InferInput(name, shape, datatype, data=None, parameters=None)`."""

    _core = core.Tensor

    def __new__(  # type: ignore[misc]
        cls, name: str, shape: list[int], datatype: str, data: Any = None, parameters: dict[str, Any] | None = None
    ) -> core.Tensor:
        return _tensor(name, shape, datatype, data, parameters)


class InferOutput(InferInput):
    """KServe's `InferOutput(name, shape, datatype, data=None, parameters=None)`."""


class RequestedOutput(metaclass=_Alias):
    _core = core.RequestedOutput

    def __new__(cls, name: str, parameters: dict[str, Any] | None = None) -> core.RequestedOutput:  # type: ignore[misc]
        return core.RequestedOutput(name, parameters)


class InferRequest(metaclass=_Alias):
    """KServe's `InferRequest(model_name, infer_inputs, request_id=None, raw_inputs=None, from_grpc=False,
    parameters=None, request_outputs=None, model_version=None)`."""

    _core = core.InferRequest

    def __new__(  # type: ignore[misc]
        cls,
        model_name: str,
        infer_inputs: list[core.Tensor],
        request_id: str | None = None,
        raw_inputs: Any = None,
        from_grpc: bool = False,
        parameters: dict[str, Any] | None = None,
        request_outputs: list[core.RequestedOutput] | None = None,
        model_version: str | None = None,
    ) -> core.InferRequest:
        return core.InferRequest(
            model_name,
            list(infer_inputs),
            id=request_id,
            parameters=parameters,
            outputs=request_outputs,
            model_version=model_version,
        )


class InferResponse(metaclass=_Alias):
    """KServe's `InferResponse(response_id, model_name, infer_outputs, model_version=None, raw_outputs=None,
    from_grpc=False, parameters=None, use_binary_outputs=False, requested_outputs=None)` (binary outputs are the
    client's choice in modelplane, as the V2 protocol puts it)."""

    _core = core.InferResponse

    def __new__(  # type: ignore[misc]
        cls,
        response_id: str,
        model_name: str,
        infer_outputs: list[core.Tensor],
        model_version: str | None = None,
        raw_outputs: Any = None,
        from_grpc: bool = False,
        parameters: dict[str, Any] | None = None,
        use_binary_outputs: bool = False,
        requested_outputs: Any = None,
    ) -> core.InferResponse:
        response = core.InferResponse(
            model_name, list(infer_outputs), model_version=model_version, parameters=parameters
        )
        if response_id:
            response.id = response_id
        return response
