"""Benchmark models for modelplane: an echo model for the 16 MB binary-tensor run."""

from __future__ import annotations

from typing import Any

from modelplane import InferRequest, InferResponse, Model, Tensor


class Echo(Model):
    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> Any:
        t = payload.inputs[0]
        return InferResponse(self.name, [Tensor("output-0", t.datatype, t.shape, t.data)])


class Constant(Model):
    """Answers every V2 request with a fixed two-element output: measures the server, not a model."""

    def load(self) -> bool:
        import numpy as np

        self._out = np.array([1, 1], dtype=np.int64)
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> Any:
        return InferResponse(self.name, [Tensor("output-0", "INT64", [2], self._out)])
