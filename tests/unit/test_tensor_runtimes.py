"""The ONNX and PyTorch runtimes on models built in the test: metadata read from the model, answers equal to the
numpy computation over V1 and V2 (named inputs, requested outputs), and every wrong input refused before the model
runs, with a message naming what the model expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import tensor_models as tm

from modelplane.protocol.errors import InvalidInput, ModelLoadError
from modelplane.protocol.types import InferRequest, RequestedOutput, Tensor, TensorSpec
from modelplane.runtimes import detect_runtime
from modelplane.runtimes.onnx import ONNXModel
from modelplane.runtimes.pytorch import PyTorchModel

X = np.random.default_rng(1).random((5, 4), dtype=np.float32)


def loaded(cls: type, path: Path, **options: str) -> Any:
    model = cls("m", path.parent, options)
    assert model.load() and model.ready
    return model


def v2(*tensors: Tensor, outputs: list[str] | None = None) -> InferRequest:
    requested = [RequestedOutput(n) for n in outputs] if outputs else None
    return InferRequest(model_name="m", inputs=list(tensors), outputs=requested)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tensor")
    return {
        "onnx": tm.onnx_mlp(root / "onnx"),
        "two": tm.onnx_two_by_two(root / "two"),
        "pt": tm.torchscript_mlp(root / "pt"),
        "pt2": tm.exported_mlp(root / "pt2"),
    }


def test_the_runtime_is_detected_from_the_file(models: dict[str, Path]) -> None:
    assert [detect_runtime(models[k].parent) for k in ("onnx", "pt", "pt2")] == ["onnx", "pytorch", "pytorch"]


@pytest.mark.parametrize("kind", ["onnx", "pt", "pt2"])
def test_the_mlp_answers_as_numpy_over_v1_and_v2(models: dict[str, Path], kind: str) -> None:
    cls = ONNXModel if kind == "onnx" else PyTorchModel
    model = loaded(cls, models[kind])
    assert np.allclose(model.predict({"instances": X.tolist()})["predictions"], tm.mlp(X), atol=1e-5)
    name = {"onnx": "x", "pt": "input-0", "pt2": "input"}[kind]
    response = model.predict(v2(Tensor.from_numpy(name, X)))
    (out,) = response.outputs
    assert out.datatype == "FP32" and out.shape == [5, 3]
    assert np.allclose(out.data, tm.mlp(X), atol=1e-5)


def test_onnx_metadata_comes_from_the_graph(models: dict[str, Path]) -> None:
    model = loaded(ONNXModel, models["two"])
    assert model.input_metadata() == [TensorSpec("a", "INT64", [-1, 2]), TensorSpec("b", "INT64", [-1, 2])]
    assert model.output_metadata() == [TensorSpec("sum", "INT64", [-1, 2]), TensorSpec("product", "INT64", [-1, 2])]
    assert model.platform == "onnxruntime_onnx"
    mlp = loaded(PyTorchModel, models["pt2"])
    assert mlp.input_metadata() == [TensorSpec("input", "FP32", [-1, 4])]
    assert mlp.output_metadata() == [TensorSpec("output-0", "FP32", [-1, 3])]


def test_several_named_inputs_and_outputs_and_the_outputs_asked_for(models: dict[str, Path]) -> None:
    model = loaded(ONNXModel, models["two"])
    a = np.array([[1, 2], [3, 4]], dtype=np.int64)
    b = np.array([[10, 20], [30, 40]], dtype=np.int64)
    everything = model.predict(v2(Tensor.from_numpy("b", b), Tensor.from_numpy("a", a)))  # any order, by name
    assert [o.name for o in everything.outputs] == ["sum", "product"]
    assert everything.outputs[0].data.tolist() == (a + b).tolist()
    assert everything.outputs[1].data.tolist() == (a * b).tolist()
    only = model.predict(v2(Tensor.from_numpy("a", a), Tensor.from_numpy("b", b), outputs=["product"]))
    assert [o.name for o in only.outputs] == ["product"]


@pytest.mark.parametrize(
    "tensors, outputs, message",
    [
        ([("x", np.zeros((2, 4), np.float64))], None, "input 'x' has datatype FP64, the model expects FP32"),
        ([("x", np.zeros((2, 5), np.float32))], None, "input 'x' has shape [2, 5], the model expects [-1, 4]"),
        ([("x", np.zeros((4,), np.float32))], None, "input 'x' has shape [4], the model expects [-1, 4]"),
        ([], None, "missing input 'x'; the model's inputs are 'x'"),
        ([("x", np.zeros((1, 4), np.float32)), ("y", np.zeros(1))], None, "unexpected input 'y'"),
        ([("x", np.zeros((1, 4), np.float32))], ["nope"], "unknown output 'nope'; the model's outputs are 'scores'"),
    ],
)
def test_wrong_inputs_are_refused_before_the_model_runs(
    models: dict[str, Path], tensors: list[tuple[str, np.ndarray]], outputs: list[str] | None, message: str
) -> None:
    model = loaded(ONNXModel, models["onnx"])
    with pytest.raises(InvalidInput) as refused:
        model.predict(v2(*(Tensor.from_numpy(n, a) for n, a in tensors), outputs=outputs))
    assert message in str(refused.value)


def test_v1_needs_a_single_input_model_and_numbers(models: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match="the model has 2 inputs \\('a', 'b'\\): send them by name over V2"):
        loaded(ONNXModel, models["two"]).predict({"instances": [[1, 2]]})
    mlp = loaded(ONNXModel, models["onnx"])
    with pytest.raises(InvalidInput, match="do not form a FP32 tensor"):
        mlp.predict({"instances": [["a", "b", "c", "d"]]})
    with pytest.raises(InvalidInput, match="shape \\[1, 3\\]"):
        mlp.predict({"instances": [[1, 2, 3]]})
    with pytest.raises(InvalidInput, match='Expected "instances" or "inputs"'):
        mlp.predict({"rows": [[1, 2, 3, 4]]})


def test_a_torchscript_module_refuses_a_wrong_shape_as_bad_input(models: dict[str, Path]) -> None:
    model = loaded(PyTorchModel, models["pt"])
    with pytest.raises(InvalidInput, match="the model refused the input"):
        model.predict(v2(Tensor.from_numpy("input-0", np.zeros((2, 5), np.float32))))
    with pytest.raises(InvalidInput, match="the model takes inputs input-0; the request has x"):
        model.predict(v2(Tensor.from_numpy("x", X)))


def test_threads_come_from_the_options_and_a_broken_file_fails_the_load(
    models: dict[str, Path], tmp_path: Path
) -> None:
    model = loaded(ONNXModel, models["onnx"], intra_op_threads="1")
    assert model.model.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="--intra_op_threads must be at least 1"):
        ONNXModel("m", models["onnx"].parent, {"intra_op_threads": "0"}).load()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match=r"cannot load model\.onnx with ONNX Runtime"):
        ONNXModel("m", broken, {}).load()
    (broken / "model.onnx").unlink()
    (broken / "model.pt").write_bytes(b"not an archive")
    with pytest.raises(ModelLoadError, match=r"cannot load model\.pt with torch"):
        PyTorchModel("m", broken, {}).load()


def test_mlservers_settings_file_beside_a_model_is_not_taken_for_an_xgboost_model(tmp_path: Path) -> None:
    (tmp_path / "model-settings.json").write_text('{"name": "m", "implementation": "mlserver_sklearn.SKLearnModel"}')
    (tmp_path / "model.joblib").write_bytes(b"")
    assert detect_runtime(tmp_path) == "sklearn"
