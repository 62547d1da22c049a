"""Runtimes: LightGBM boosters saved as text model files (.bst or .txt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelplane.model.payload import is_dataframe
from modelplane.runtimes.base import FileModel


class LightGBMModel(FileModel):
    extensions = (".bst", ".txt")
    pickle_sized = True

    def load_file(self, path: Path) -> Any:
        import lightgbm as lgb

        self.nthread = int(self.options.get("nthread", 1))
        return lgb.Booster(model_file=str(path))

    def run(self, model: Any, inputs: Any) -> Any:
        if is_dataframe(inputs):
            inputs = inputs[model.feature_name()] if set(model.feature_name()) <= set(inputs.columns) else inputs
        return model.predict(inputs, num_threads=self.nthread)
