"""Runtimes: Spark MLlib `PipelineModel` directories (`metadata/`, `stages/`) with pyspark in local mode, one Spark
session per server process, as MLServer's mllib runtime. Inputs are the pipeline's input columns — by name (V1 rows
as objects, V2 one input per column), or in order when the first stage names them (a VectorAssembler's inputCols:
V1 rows as lists, one 2-D V2 input); the answer is the `prediction` column, and `probability` when the model
has one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.model.base import Headers, Model
from modelplane.protocol.errors import InvalidInput, ModelLoadError, ModelNotReady
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor, TensorSpec
from modelplane.runtimes.tensor import threads

_session: Any = None  # one per process, made by the first model that loads


def is_pipeline(path: Path) -> bool:
    return path.is_dir() and (path / "metadata").is_dir() and (path / "stages").is_dir()


def session(options: dict[str, Any]) -> Any:
    global _session
    if _session is None:
        from pyspark.sql import SparkSession

        _session = (
            SparkSession.builder.master(f"local[{threads(options)}]")
            .appName("modelplane")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "1")
            .getOrCreate()
        )
    return _session


class MLlibModel(Model):
    def __init__(self, name: str, model_dir: str | Path, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.options = options or {}
        self.model: Any = None
        self.columns: list[str] = []  # the pipeline's input columns, in order, when its first stage names them

    def load(self) -> bool:
        if not is_pipeline(self.model_dir):
            raise ModelLoadError(f"{self.model_dir} is not a Spark ML pipeline directory (metadata/, stages/)")
        spark = session(self.options)
        from pyspark.ml import PipelineModel

        try:
            model = PipelineModel.load(str(self.model_dir))
        except Exception as exc:  # py4j / Spark errors
            raise ModelLoadError(f"cannot load the pipeline in {self.model_dir}: {exc}") from exc
        first = model.stages[0] if model.stages else None
        if first is not None and first.hasParam("inputCols") and first.isDefined("inputCols"):
            self.columns = list(first.getInputCols())
        elif first is not None and first.hasParam("inputCol") and first.isDefined("inputCol"):
            self.columns = [first.getInputCol()]
        self.spark, self.model, self.ready = spark, model, True
        return True

    def unload(self) -> None:
        self.model = None
        self.ready = False

    def input_metadata(self) -> list[TensorSpec]:
        return [TensorSpec(c, "FP64", [-1]) for c in self.columns]

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        model = self.model
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        columns, rows = self._rows(payload)
        try:
            frame = self.spark.createDataFrame(rows, columns)
            result = model.transform(frame)
            wanted = [c for c in ("prediction", "probability") if c in result.columns]
            collected = result.select(*wanted).collect()
        except Exception as exc:  # Spark refuses a missing column or a wrong type with its own error
            message = str(exc).strip().splitlines()[0]
            raise InvalidInput(f"the pipeline refused the input: {message}") from exc
        predictions = np.asarray([r["prediction"] for r in collected], dtype=np.float64)
        if isinstance(payload, InferRequest):
            outputs = [Tensor.from_numpy("prediction", predictions)]
            if "probability" in wanted:
                probs = np.asarray([r["probability"].toArray() for r in collected], dtype=np.float64)
                outputs.append(Tensor.from_numpy("probability", probs))
            return InferResponse(model_name=self.name, outputs=outputs, id=payload.id or new_id())
        return {"predictions": predictions.tolist()}

    def _rows(self, payload: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        if isinstance(payload, InferRequest):
            if len(payload.inputs) == 1 and payload.inputs[0].data.ndim == 2:
                return self._ordered(payload.inputs[0].data.tolist())
            columns = [t.name for t in payload.inputs]
            data = [_plain(t.data.ravel().tolist()) for t in payload.inputs]
            if len({len(d) for d in data}) != 1:
                raise InvalidInput("every input must have the same number of rows")
            return columns, list(zip(*data, strict=True))
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list) or not payload["instances"]:
            raise InvalidInput('send JSON with "instances": rows as objects by column (or lists in column order)')
        rows = payload["instances"]
        if all(isinstance(r, dict) for r in rows):
            columns = sorted({k for r in rows for k in r})
            return columns, [tuple(_plain([r.get(c) for c in columns])) for r in rows]
        return self._ordered(rows)

    def _ordered(self, rows: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        if not self.columns:
            raise InvalidInput("the pipeline's first stage names no input columns: send rows as objects by column")
        if not all(isinstance(r, list) and len(r) == len(self.columns) for r in rows):
            raise InvalidInput(
                f"each row must list the {len(self.columns)} columns in order: {', '.join(self.columns)}"
            )
        return self.columns, [tuple(_plain(r)) for r in rows]


def _plain(values: list[Any]) -> list[Any]:
    """Spark infers column types from Python values: ints become floats (a pipeline's numeric columns are doubles),
    bytes become text."""
    out = []
    for v in values:
        if isinstance(v, bool) or v is None:
            out.append(v)
        elif isinstance(v, int):
            out.append(float(v))
        elif isinstance(v, bytes):
            out.append(v.decode())
        else:
            out.append(v)
    return out
