"""Runtimes: PMML models (`.pmml`) with JPMML-Evaluator on the JVM (in process, through JPype), as KServe's
pmmlserver serves them: input fields by name (V1 rows as lists in the model's field order or as objects by name;
V2 one input per field, or one 2-D input in field order), every result field (target, probabilities, outputs)
back — V1 as one object per row, V2 as one output per field. A row the model cannot evaluate is a 400 with the
evaluator's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.model.base import Headers
from modelplane.protocol.errors import InvalidInput, ModelLoadError, ModelNotReady
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor, TensorSpec
from modelplane.runtimes.base import FileModel

PMML_DATATYPES = {"double": "FP64", "float": "FP32", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


class PMMLModel(FileModel):
    extensions = (".pmml",)

    def __init__(self, name: str, model_dir: str | Path, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, model_dir, options)
        self.fields: list[TensorSpec] = []
        self.results: list[str] = []

    def load_file(self, path: Path) -> Any:
        from jpmml_evaluator import make_evaluator

        try:
            evaluator = make_evaluator(str(path), backend="jpype").verify()
        except Exception as exc:  # the evaluator's own Java exceptions
            raise ModelLoadError(f"cannot load {path.name} with JPMML-Evaluator: {exc}") from exc
        self.fields = [
            TensorSpec(f.getName(), PMML_DATATYPES.get(str(f.getDataType()), "BYTES"), [-1])
            for f in evaluator.getInputFields()
        ]
        self.results = [f.getName() for f in [*evaluator.getTargetFields(), *evaluator.getOutputFields()]]
        return evaluator

    def input_metadata(self) -> list[TensorSpec]:
        return self.fields

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        evaluator = self.model
        if evaluator is None:
            raise ModelNotReady(self.name, "it was unloaded")
        frame = self._frame(payload)
        results = evaluator.evaluateAll(frame)
        if "errors" in results and results["errors"].notna().any():
            row = int(np.flatnonzero(results["errors"].notna().to_numpy())[0])
            raise InvalidInput(f"row {row}: the model cannot evaluate it: {results['errors'].iloc[row]}")
        results = results.drop(columns=["errors"], errors="ignore")
        if isinstance(payload, InferRequest):
            outputs = [Tensor.from_numpy(str(c), _column(results[c])) for c in results.columns]
            return InferResponse(model_name=self.name, outputs=outputs, id=payload.id or new_id())
        return {"predictions": results.to_dict(orient="records")}

    def _frame(self, payload: Any) -> Any:
        import pandas as pd

        names = [f.name for f in self.fields]
        if isinstance(payload, InferRequest):
            if len(payload.inputs) == 1 and payload.inputs[0].data.ndim == 2 and payload.inputs[0].name not in names:
                rows = payload.inputs[0].data
                if rows.shape[1] != len(names):
                    raise InvalidInput(
                        f"the model has {len(names)} input fields ({', '.join(names)}), rows have {rows.shape[1]}"
                    )
                return pd.DataFrame(rows.tolist(), columns=names)
            given = {t.name: t.data.ravel() for t in payload.inputs}
            unknown = [n for n in given if n not in names]
            if unknown:
                raise InvalidInput(f"unknown input {unknown[0]!r}; the model's fields are {', '.join(names)}")
            columns = {n: [v.decode() if isinstance(v, bytes) else v for v in given[n]] for n in given}
            return pd.DataFrame(columns)
        if not isinstance(payload, dict) or not isinstance(payload.get("instances", payload.get("inputs")), list):
            raise InvalidInput('send JSON with "instances": rows as lists (in field order) or objects (by field)')
        rows = payload.get("instances", payload.get("inputs"))
        if rows and all(isinstance(r, dict) for r in rows):
            return pd.DataFrame(rows)
        if not all(isinstance(r, list) and len(r) == len(names) for r in rows):
            raise InvalidInput(f"each instance must list the model's {len(names)} fields in order: {', '.join(names)}")
        return pd.DataFrame(rows, columns=names)


def _column(series: Any) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == object:
        return np.asarray([str(v).encode() if v is not None else b"" for v in values], dtype=object)
    return values
