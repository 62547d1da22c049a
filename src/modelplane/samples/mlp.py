"""Samples: a numpy multi-layer perceptron — a batch-friendly model (a call costs about the same for 1 or 32 rows)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.model.base import Headers, Model
from modelplane.protocol.types import InferRequest, InferResponse, Tensor, TensorSpec


def make_mlp(out_dir: str | Path, inputs: int = 64, hidden: int = 1024, layers: int = 2, outputs: int = 10) -> Path:
    """Random weights (seeded), saved as weights.npz: inputs -> `layers` hidden layers (ReLU) -> outputs."""
    rng = np.random.default_rng(0)
    sizes = [inputs, *([hidden] * layers), outputs]
    arrays = {
        f"w{i}": (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32)
        for i, (a, b) in enumerate(itertools.pairwise(sizes))
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "weights.npz", **arrays)
    return out


class MLP(Model):
    """Serves weights.npz from `model_dir`: V2 (input FP32 [n, inputs] → output-0 [n, outputs]) and V1 instances."""

    def __init__(self, name: str, model_dir: str | Path | None = None) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir or ".")
        self.weights: list[np.ndarray] = []

    def load(self) -> bool:
        with np.load(self.model_dir / "weights.npz") as npz:
            self.weights = [npz[f"w{i}"] for i in range(len(npz.files))]
        self.ready = True
        return True

    def forward(self, x: np.ndarray) -> np.ndarray:
        for w in self.weights[:-1]:
            x = np.maximum(x @ w, 0.0)
        return x @ self.weights[-1]

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        if isinstance(payload, InferRequest):
            x = np.asarray(payload.inputs[0].data, dtype=np.float32)
            return InferResponse(self.name, [Tensor.from_numpy("output-0", self.forward(x))])
        return {"predictions": self.forward(np.asarray(payload["instances"], dtype=np.float32)).tolist()}

    def input_metadata(self) -> list[TensorSpec]:
        return [TensorSpec("input-0", "FP32", [-1, self.weights[0].shape[0] if self.weights else -1])]

    def output_metadata(self) -> list[TensorSpec]:
        return [TensorSpec("output-0", "FP32", [-1, self.weights[-1].shape[1] if self.weights else -1])]
