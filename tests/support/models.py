"""Test support: small custom models used by the integration tests (loaded by the server via import path)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np

from modelplane import InferRequest, InferResponse, Model, Tensor
from modelplane.protocol.types import TensorSpec


class Echo(Model):
    """Returns every input unchanged as an output named `<input>_out` (V2); echoes V1 bodies."""

    def __init__(self, name: str) -> None:
        super().__init__(name, version="1")

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        if isinstance(payload, InferRequest):
            outputs = [Tensor(f"{t.name}_out", t.datatype, t.shape, t.data) for t in payload.inputs]
            return InferResponse(self.name, outputs, parameters={"echoed": len(outputs)})
        if isinstance(payload, bytes):
            return b"raw:" + payload
        return {"predictions": payload.get("instances", payload)}

    def input_metadata(self) -> list[TensorSpec]:
        return [TensorSpec("x", "FP32", [-1, 4])]

    def output_metadata(self) -> list[TensorSpec]:
        return [TensorSpec("x_out", "FP32", [-1, 4])]


class Slow(Model):
    """A sync predict that takes SLOW_SECONDS (default 3) — it must not block the event loop."""

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
        return {"predictions": ["slow"]}


class AsyncAdder(Model):
    """Async stages: preprocess adds 1, predict doubles, postprocess wraps; sets a response header."""

    return_response_headers = True

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return np.asarray(payload["instances"], dtype=float) + 1

    async def predict(
        self, payload: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        await asyncio.sleep(0)
        if response_headers is not None:
            response_headers["x-model-stage"] = "predict"
        return payload * 2

    def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Any:
        if response_headers is not None:
            response_headers["x-request-echo"] = (headers or {}).get("x-request-id", "none")
        return {"predictions": result.tolist()}


class Failing(Model):
    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        raise RuntimeError("boom!")


class NeverReady(Model):
    def load(self) -> bool:
        raise OSError("weights are corrupt")


class Explainer(Model):
    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return {"predictions": [1]}

    def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return {"predictions": [1], "explanations": [{"feature": 0, "weight": 0.5}]}


class Gate(Model):
    """Doubles its input (V1 instances or V2 tensors); each call waits until the file $GATE_FILE exists, so a test
    can hold the model busy, queue requests behind it deterministically, then open the gate. A row containing -1
    makes the whole call fail."""

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        gate = os.environ.get("GATE_FILE")
        while gate and not os.path.exists(gate):
            time.sleep(0.005)
        if isinstance(payload, InferRequest):
            data = payload.inputs[0].data
            if (data == -1).any():
                raise ValueError("poisoned row")
            return InferResponse(self.name, [Tensor.from_numpy("doubled", data * 2)])
        rows = np.asarray(payload["instances"])
        if (rows == -1).any():
            raise ValueError("poisoned row")
        return {"predictions": (rows * 2).tolist()}
