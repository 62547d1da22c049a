"""Protocol core: transport-neutral inference request/response types holding numpy arrays, never wire objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelplane.protocol.datatypes import datatype_of
from modelplane.protocol.ids import new_id

Parameters = dict[str, Any]


@dataclass(slots=True)
class Tensor:
    """A named tensor. `data` is a numpy array of `shape`; BYTES tensors are object arrays of bytes or str."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray
    parameters: Parameters | None = None

    @classmethod
    def from_numpy(cls, name: str, array: Any, datatype: str | None = None) -> Tensor:
        arr = array if type(array) is np.ndarray else np.asarray(array)
        if arr.dtype.kind in "SU":
            arr = arr.astype(object)
        return cls(name, datatype or datatype_of(arr), list(arr.shape), arr)

    def as_numpy(self) -> np.ndarray:
        return self.data

    def set_data_from_numpy(self, array: np.ndarray, binary_data: bool = True) -> None:
        """KServe's spelling: the tensor's data, shape and datatype from `array` (binary or JSON on the wire is the
        client's choice in the V2 protocol, so `binary_data` changes nothing here)."""
        other = Tensor.from_numpy(self.name, array)
        self.data, self.shape, self.datatype = other.data, other.shape, other.datatype


@dataclass(slots=True)
class RequestedOutput:
    name: str
    parameters: Parameters | None = None


@dataclass(slots=True)
class InferRequest:
    model_name: str
    inputs: list[Tensor]
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[RequestedOutput] | None = None
    model_version: str | None = None

    def input(self, name: str) -> Tensor | None:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        return None

    # KServe's spellings, for models written against KServe's InferRequest
    def get_input_by_name(self, name: str) -> Tensor | None:
        return self.input(name)

    @property
    def request_outputs(self) -> list[RequestedOutput] | None:
        return self.outputs


@dataclass(slots=True)
class InferResponse:
    model_name: str
    outputs: list[Tensor]
    id: str = field(default_factory=new_id)
    model_version: str | None = None
    parameters: Parameters | None = None

    def output(self, name: str) -> Tensor | None:
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        return None

    def get_output_by_name(self, name: str) -> Tensor | None:  # KServe's spelling
        return self.output(name)


@dataclass(slots=True)
class TensorSpec:
    """Metadata of one model input or output, as served by the metadata endpoints."""

    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
