"""Runtimes: scikit-learn models saved with joblib or pickle (`PREDICT_PROBA=true` returns probabilities)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelplane.protocol.errors import InvalidInput
from modelplane.runtimes.base import FileModel


class SKLearnModel(FileModel):
    extensions = (".joblib", ".pkl", ".pickle")
    pickle_sized = True

    def load_file(self, path: Path) -> Any:
        import joblib

        model = joblib.load(path)
        self.use_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(model, "predict_proba")
        return model

    def check(self, model: Any, inputs: Any) -> None:
        expected = getattr(model, "n_features_in_", None)
        shape = getattr(inputs, "shape", None)
        if expected is not None and shape is not None and len(shape) == 2 and shape[1] != expected:
            raise InvalidInput(f"the model expects {expected} features per row, the request has {shape[1]}")

    def run(self, model: Any, inputs: Any) -> Any:
        if self.use_proba:
            return model.predict_proba(inputs)
        return model.predict(inputs)
