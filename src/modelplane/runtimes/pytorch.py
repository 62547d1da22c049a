"""Runtimes: PyTorch on the CPU — TorchScript archives (`.pt`) and `torch.export` programs (`.pt2`), run under
`torch.inference_mode` with intra-op threads from the options. A TorchScript module does not describe its tensors:
inputs are positional (`input-0`, … in V2, any datatype the module accepts), outputs `output-0`, …; an exported
program's inputs and outputs come from its graph signature, with their datatypes and shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.protocol.datatypes import datatype_of
from modelplane.protocol.errors import InvalidInput, ModelLoadError
from modelplane.protocol.types import TensorSpec
from modelplane.runtimes.tensor import TensorModel, threads

TORCH_DATATYPES = {
    "torch.bool": "BOOL",
    "torch.uint8": "UINT8",
    "torch.int8": "INT8",
    "torch.int16": "INT16",
    "torch.int32": "INT32",
    "torch.int64": "INT64",
    "torch.float16": "FP16",
    "torch.float32": "FP32",
    "torch.float64": "FP64",
}
ANY = "ANY"  # a TorchScript input: the module decides what it accepts


class PyTorchModel(TensorModel):
    extensions = (".pt", ".pt2")
    _torch: Any = None  # set by load_file

    @property
    def platform(self) -> str:
        return "pytorch_libtorch"

    def load_file(self, path: Path) -> Any:
        import torch

        self._torch = torch  # the module, kept: no import statement on the request path
        torch.set_num_threads(threads(self.options))
        try:
            if path.suffix == ".pt2":
                program = torch.export.load(str(path))
                self._describe(program)
                return program.module()
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"cannot load {path.name} with torch {torch.__version__}: {exc}") from exc
        module.eval()
        arguments = [a for a in module.forward.schema.arguments if a.name != "self"]
        self.inputs = [TensorSpec(f"input-{i}", ANY, []) for i in range(len(arguments))]
        self.outputs = []  # named when the module runs: output-0, …
        return module

    def _describe(self, program: Any) -> None:
        """Names, datatypes and shapes of an exported program's user inputs and outputs (symbolic sizes: -1)."""
        sig = program.graph_signature
        nodes = {n.name: n for n in program.graph.nodes}

        def spec(name: str, node_name: str) -> TensorSpec:
            value = nodes[node_name].meta.get("val")
            dims = [d if isinstance(d, int) else -1 for d in value.shape] if value is not None else []
            dtype = TORCH_DATATYPES.get(str(value.dtype), "FP32") if value is not None else "FP32"
            return TensorSpec(name, dtype, dims)

        self.inputs = [spec(n, n) for n in sig.user_inputs]
        self.outputs = [spec(f"output-{i}", n) for i, n in enumerate(sig.user_outputs)]

    def _feeds(self, given: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.inputs and self.inputs[0].datatype == ANY:  # TorchScript: by position, no metadata to check
            expected = {s.name for s in self.inputs}
            if set(given) != expected:
                names = ", ".join(sorted(expected))
                raise InvalidInput(f"the model takes inputs {names}; the request has {', '.join(sorted(given))}")
            return {s.name: given[s.name].data for s in self.inputs}
        return super()._feeds(given)

    def _v1(self, model: Any, payload: Any) -> dict[str, Any]:
        if self.inputs and self.inputs[0].datatype == ANY and isinstance(payload, dict):
            data = payload.get("instances", payload.get("inputs"))
            array = np.asarray(data, dtype=np.float32) if data is not None else None
            if array is None or array.dtype == object:
                raise InvalidInput('Expected "instances" or "inputs": a list of numbers in the request body')
            results = self._run(model, {"input-0": array})
            return {"predictions": next(iter(results.values())).tolist()}
        return super()._v1(model, payload)

    def run_tensors(self, model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        try:
            with torch.inference_mode():
                result = model(*args)
        except RuntimeError as exc:
            if self.inputs and self.inputs[0].datatype == ANY:
                # a TorchScript module states no input shapes or datatypes: what it cannot run on is the input
                raise InvalidInput(f"the model refused the input: {str(exc).strip().splitlines()[-1]}") from exc
            raise
        if not isinstance(result, (tuple, list)):  # one output, the usual case
            name = self.outputs[0].name if len(self.outputs) == 1 else "output-0"
            out = {name: result.detach().numpy()}
        else:
            declared = [s.name for s in self.outputs] if len(self.outputs) == len(result) else []
            names = declared or [f"output-{i}" for i in range(len(result))]  # a Triton config may name them
            out = {n: t.detach().numpy() for n, t in zip(names, result, strict=True)}
        if not self.outputs:
            self.outputs = [TensorSpec(n, datatype_of(a), [-1, *a.shape[1:]]) for n, a in out.items()]
        return out
