"""Runtimes: XGBoost boosters saved as .bst, .json or .ubj."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelplane.runtimes.base import FileModel


class XGBoostModel(FileModel):
    extensions = (".bst", ".json", ".ubj")
    pickle_sized = True

    def load_file(self, path: Path) -> Any:
        import xgboost as xgb

        self.nthread = int(self.options.get("nthread", 1))
        booster = xgb.Booster(params={"nthread": self.nthread})
        booster.load_model(str(path))
        self._dmatrix = xgb.DMatrix
        return booster

    def run(self, model: Any, inputs: Any) -> Any:
        return model.predict(self._dmatrix(inputs, nthread=self.nthread))
