"""Runtimes: scikit-learn models saved with joblib or pickle (`PREDICT_PROBA=true` returns probabilities)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelplane.runtimes.base import FileModel


class SKLearnModel(FileModel):
    extensions = (".joblib", ".pkl", ".pickle")

    def load_file(self, path: Path) -> Any:
        import joblib

        model = joblib.load(path)
        self.use_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(model, "predict_proba")
        return model

    def run(self, inputs: Any) -> Any:
        if self.use_proba:
            return self.model.predict_proba(inputs)
        return self.model.predict(inputs)
