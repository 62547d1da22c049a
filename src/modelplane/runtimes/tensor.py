"""Runtimes: the contract of models with named, typed tensor inputs and outputs (ONNX, TorchScript, SavedModel) —
V2 inputs matched by name and checked against the model's metadata (datatype, rank, fixed dimensions) before it
runs, requested outputs honoured; V1 `instances` fed to a single-input model in its own datatype."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from modelplane.model.base import Headers
from modelplane.protocol.datatypes import wire_dtype
from modelplane.protocol.errors import InferenceError, InvalidInput, ModelNotReady
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor, TensorSpec
from modelplane.runtimes.base import FileModel


def threads(options: dict[str, Any]) -> int:
    """Intra-op threads: `--intra_op_threads` (the Kubernetes renderer and the local launcher derive it from the
    isvc's CPU resources), else the CPUs this process may run on."""
    value = options.get("intra_op_threads")
    if value is not None:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"--intra_op_threads must be a whole number, got {value!r}") from None
        if n < 1:
            raise ValueError(f"--intra_op_threads must be at least 1, got {n}")
        return n
    return max(1, len(os.sched_getaffinity(0)))


def _fits(wanted: list[int], shape: tuple[int, ...]) -> bool:
    """The shape has the model's rank and matches every fixed dimension (-1: any)."""
    if len(shape) != len(wanted):
        return False
    for w, g in zip(wanted, shape, strict=True):  # noqa: SIM110 - a loop: no generator on the hot path
        if w != -1 and w != g:
            return False
    return True


class TensorModel(FileModel):
    """Subclasses load the file into `self.model` and fill `inputs` / `outputs`, then implement `run_tensors`."""

    def __init__(self, name: str, model_dir: Any, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, model_dir, options)
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []

    def input_metadata(self) -> list[TensorSpec]:
        return self.inputs

    def output_metadata(self) -> list[TensorSpec]:
        return self.outputs

    def run_tensors(self, model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on its inputs by name; every output by name, in the model's order."""
        raise NotImplementedError

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        model = self.model  # one reference for the whole request: an unload meanwhile cannot pull it away
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        if isinstance(payload, InferRequest):
            given = {}
            for tensor in payload.inputs:
                given[tensor.name] = tensor
            results = self._run(model, self._feeds(given))
            names = list(results)
            if payload.outputs:
                names = [o.name for o in payload.outputs]
                unknown = [n for n in names if n not in results]
                if unknown:
                    known = self._names(self.outputs)
                    raise InvalidInput(f"unknown output {unknown[0]!r}; the model's outputs are {known}")
            outputs = [Tensor.from_numpy(n, results[n]) for n in names]
            return InferResponse(model_name=self.name, outputs=outputs, id=payload.id or new_id())
        return self._v1(model, payload)

    def _v1(self, model: Any, payload: Any) -> dict[str, Any]:
        """TF Serving's V1: `instances` (rows) or `inputs` (columnar) of the single input; with several outputs each
        row's prediction is an object by output name."""
        if not isinstance(payload, dict) or not ("instances" in payload or "inputs" in payload):
            raise InvalidInput('Expected "instances" or "inputs" in the request body')
        if len(self.inputs) != 1:
            raise InvalidInput(
                f"the model has {len(self.inputs)} inputs ({self._names(self.inputs)}): send them by name over V2"
            )
        spec = self.inputs[0]
        data = payload.get("instances", payload.get("inputs"))
        try:
            array = np.asarray(data, dtype=wire_dtype(spec.datatype))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(f"instances do not form a {spec.datatype} tensor: {exc}") from None
        results = self._run(model, self._feeds({spec.name: Tensor(spec.name, spec.datatype, list(array.shape), array)}))
        if len(results) == 1:
            return {"predictions": next(iter(results.values())).tolist()}
        rows = len(next(iter(results.values())))
        return {"predictions": [{n: r[i].tolist() for n, r in results.items()} for i in range(rows)]}

    def _feeds(self, given: dict[str, Tensor]) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        missing: TensorSpec | None = None
        for spec in self.inputs:
            tensor = given.get(spec.name)
            if tensor is None:
                missing = missing or spec
                continue
            if tensor.datatype != spec.datatype:
                raise InvalidInput(
                    f"input {spec.name!r} has datatype {tensor.datatype}, the model expects {spec.datatype}"
                )
            shape = tensor.data.shape
            if not _fits(spec.shape, shape):
                raise InvalidInput(f"input {spec.name!r} has shape {list(shape)}, the model expects {spec.shape}")
            feeds[spec.name] = tensor.data
        if len(given) > len(feeds):  # every given name that is an input is in `feeds` by now
            extra = next(n for n in given if n not in feeds)
            raise InvalidInput(f"unexpected input {extra!r}; the model's inputs are {self._names(self.inputs)}")
        if missing is not None:
            raise InvalidInput(f"missing input {missing.name!r}; the model's inputs are {self._names(self.inputs)}")
        return feeds

    def _run(self, model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self.run_tensors(model, feeds)
        except InvalidInput:
            raise
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"the model refused the input: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise InferenceError(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _names(specs: list[TensorSpec]) -> str:
        return ", ".join(repr(s.name) for s in specs)
