"""Runtimes: TensorFlow SavedModels (`saved_model.pb`, tensorflow-cpu) through a signature — `serving_default`
unless `--signature_name` names another — with its inputs and outputs as the model's metadata; V1 as TF Serving
defines it (`instances`: rows, a row an object by input name when there are several; `inputs`: columns, answered
as `outputs`), and V2 by input name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from modelplane.protocol.errors import InvalidInput, ModelLoadError
from modelplane.protocol.types import Tensor, TensorSpec
from modelplane.runtimes.tensor import TensorModel, threads

TF_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}


def _spec(name: str, tf_spec: Any) -> TensorSpec:
    datatype = TF_DATATYPES.get(tf_spec.dtype.name)
    if datatype is None:
        raise ModelLoadError(f"signature tensor {name!r} has dtype {tf_spec.dtype.name}, which V2 cannot carry")
    dims = tf_spec.shape.as_list() if tf_spec.shape.rank is not None else []
    return TensorSpec(name, datatype, [-1 if d is None else int(d) for d in dims])


class TensorFlowModel(TensorModel):
    extensions = (".pb",)

    @property
    def platform(self) -> str:
        return "tensorflow_savedmodel"

    def model_file(self) -> Path:
        """A SavedModel is its directory (saved_model.pb with variables/ beside it)."""
        directory = self.model_dir if self.model_dir.is_dir() else self.model_dir.parent
        if not (directory / "saved_model.pb").is_file():
            raise ModelLoadError(f"{directory} holds no saved_model.pb")
        return directory

    def load_file(self, path: Path) -> Any:
        import tensorflow as tf

        n = threads(self.options)
        try:  # only before TensorFlow runs its first op; a second model in the process keeps the first setting
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        name = str(self.options.get("signature_name") or "serving_default")
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # TensorFlow's own errors for a bad directory
            raise ModelLoadError(f"cannot load the SavedModel in {path}: {exc}") from exc
        if name not in loaded.signatures:
            known = ", ".join(sorted(loaded.signatures)) or "none"
            raise ModelLoadError(f"the SavedModel has no signature {name!r} (it has: {known})")
        signature = loaded.signatures[name]
        self.inputs = [_spec(k, v) for k, v in sorted(signature.structured_input_signature[1].items())]
        self.outputs = [_spec(k, v) for k, v in sorted(signature.structured_outputs.items())]
        self._keep = loaded  # the signature's variables live as long as the loaded object
        return signature

    def run_tensors(self, model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        result = model(**{k: tf.constant(v) for k, v in feeds.items()})
        return {s.name: result[s.name].numpy() for s in self.outputs}

    def _v1(self, model: Any, payload: Any) -> dict[str, Any]:
        """TF Serving's REST API: `instances` (row format) → `predictions`; `inputs` (columnar) → `outputs`."""
        if not isinstance(payload, dict) or ("instances" in payload) == ("inputs" in payload):
            raise InvalidInput('send JSON with either "instances" (rows) or "inputs" (columns)')
        names = [s.name for s in self.inputs]
        row_format = "instances" in payload
        data = payload["instances" if row_format else "inputs"]
        if len(names) == 1:
            columns = {names[0]: data.get(names[0]) if isinstance(data, dict) else data}
        elif row_format:
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InvalidInput(f"the model has inputs {', '.join(names)}: each instance is an object of them")
            columns = {n: [r.get(n) for r in data] for n in names}
        else:
            if not isinstance(data, dict):
                raise InvalidInput(f'the model has inputs {", ".join(names)}: send "inputs" as an object of them')
            columns = {n: data.get(n) for n in names}
        tensors = {}
        for spec in self.inputs:
            value = columns.get(spec.name)
            if value is None:
                raise InvalidInput(f"missing input {spec.name!r}")
            try:
                array = np.asarray(value, dtype=object if spec.datatype == "BYTES" else _np(spec.datatype))
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"input {spec.name!r} is not a {spec.datatype} tensor: {exc}") from None
            tensors[spec.name] = Tensor(spec.name, spec.datatype, list(array.shape), array)
        results = self._run(model, self._feeds(tensors))
        if not row_format:
            out = {k: v.tolist() for k, v in results.items()}
            return {"outputs": next(iter(out.values())) if len(out) == 1 else out}
        if len(results) == 1:
            return {"predictions": next(iter(results.values())).tolist()}
        rows = len(next(iter(results.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in results.items()} for i in range(rows)]}


def _np(datatype: str) -> Any:
    from modelplane.protocol.datatypes import wire_dtype

    return wire_dtype(datatype)
