"""Runtimes: a model-agnostic explainer — SHAP's KernelExplainer over the predictor, called on REST V1.

Options (`modelplane serve --model-class modelplane.runtimes.shap:KernelShapExplainer ...`): `--predictor_host`
(the platform passes it, as KServe does), `--background` (a .npy / .json file or an inline JSON list of rows: the
reference data SHAP integrates over), `--nsamples` (default auto). `:explain` answers the predictions and, per
row, one SHAP value per feature (`explanations`) with the `expected_value`; `:predict` forwards to the predictor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.model.base import Headers, Model
from modelplane.protocol.errors import InferenceError, InvalidInput


def _background(spec: str) -> np.ndarray:
    if spec.lstrip().startswith("["):
        return np.asarray(json.loads(spec), dtype=np.float64)
    path = Path(spec)
    if path.suffix == ".npy":
        return np.load(path).astype(np.float64)
    return np.asarray(json.loads(path.read_text()), dtype=np.float64)


class KernelShapExplainer(Model):
    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        opts = options or {}
        self.predictor_host = str(opts.get("predictor_host") or "")
        self.background_spec = str(opts.get("background") or "")
        nsamples = str(opts.get("nsamples") or "auto")
        self.nsamples: int | str = int(nsamples) if nsamples.isdigit() else nsamples
        if not self.predictor_host or not self.background_spec:
            raise ValueError("the SHAP explainer needs --predictor_host and --background")
        self._explainer: Any = None
        self._client: Any = None

    def load(self) -> bool:
        self.background = _background(self.background_spec)
        if self.background.ndim != 2:
            raise ValueError("--background must be a 2-d array of rows")
        self.ready = True
        return True

    def _predict(self, rows: np.ndarray) -> np.ndarray:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=120)
        r = self._client.post(
            f"http://{self.predictor_host}/v1/models/{self.name}:predict", json={"instances": rows.tolist()}
        )
        if r.status_code >= 400:
            raise InferenceError(f"the predictor answered {r.status_code}: {r.text[:300]}")
        return np.asarray(r.json()["predictions"], dtype=np.float64)

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        return {"predictions": self._predict(self._rows(payload)).tolist()}

    def explain(self, payload: Any, headers: Headers | None = None) -> Any:
        import shap

        rows = self._rows(payload)
        if self._explainer is None:  # built on first use: it calls the predictor, which may start after us
            self._explainer = shap.KernelExplainer(self._predict, self.background)
        values = self._explainer.shap_values(rows, nsamples=self.nsamples, silent=True)
        return {
            "predictions": self._predict(rows).tolist(),
            "explanations": np.asarray(values).tolist(),
            "expected_value": np.asarray(self._explainer.expected_value).tolist(),
        }

    @staticmethod
    def _rows(payload: Any) -> np.ndarray:
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('expected {"instances": [[...], ...]}')
        rows = np.asarray(payload["instances"], dtype=np.float64)
        if rows.ndim != 2:
            raise InvalidInput("instances must be rows of numbers")
        return rows
