"""Runtimes: ONNX models with ONNX Runtime on the CPU — inputs and outputs (names, datatypes, shapes with -1 for
dimensions the graph leaves free) read from the graph; intra-op threads from the options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.protocol.errors import ModelLoadError
from modelplane.protocol.types import TensorSpec
from modelplane.runtimes.tensor import TensorModel, threads

# ONNX Runtime's element types -> the V2 datatypes
ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: Any) -> TensorSpec:
    datatype = ONNX_DATATYPES.get(arg.type)
    if datatype is None:
        raise ModelLoadError(f"ONNX {arg.name!r} has type {arg.type}, which the V2 protocol cannot carry")
    return TensorSpec(arg.name, datatype, [d if isinstance(d, int) else -1 for d in arg.shape])


class ONNXModel(TensorModel):
    extensions = (".onnx",)
    _output_names: list[str] = []  # replaced per instance by load_file, never mutated

    @property
    def platform(self) -> str:
        return "onnxruntime_onnx"

    def load_file(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads(self.options)
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a bad graph
            raise ModelLoadError(f"cannot load {path.name} with ONNX Runtime: {exc}") from exc
        self.inputs = [_spec(i) for i in session.get_inputs()]
        self.outputs = [_spec(o) for o in session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        return session

    def run_tensors(self, model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self._output_names
        return dict(zip(names, model.run(names, feeds), strict=True))
