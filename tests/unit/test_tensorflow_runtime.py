"""The TensorFlow runtime on SavedModels built in the test: the signature's tensors as metadata, TF Serving's V1
(row and columnar formats, several named inputs), V2 by name, a chosen signature, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import tensor_models as tm

from modelplane.protocol.errors import InvalidInput, ModelLoadError
from modelplane.protocol.types import InferRequest, Tensor, TensorSpec
from modelplane.runtimes import detect_runtime
from modelplane.runtimes.tensorflow import TensorFlowModel

X = np.random.default_rng(9).random((3, 4), dtype=np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tm.saved_model(tmp_path_factory.mktemp("tf") / "model", two=True)


def loaded(path: Path, **options: str) -> TensorFlowModel:
    model = TensorFlowModel("m", path, {"intra_op_threads": "1", **options})
    assert model.load()
    return model


def test_serving_default_over_tf_servings_v1_and_v2(saved: Path) -> None:
    assert detect_runtime(saved) == "tensorflow"
    model = loaded(saved)
    assert model.input_metadata() == [TensorSpec("x", "FP32", [-1, 4])]
    assert model.output_metadata() == [TensorSpec("scores", "FP32", [-1, 3])]
    assert model.platform == "tensorflow_savedmodel"
    assert np.allclose(model.predict({"instances": X.tolist()})["predictions"], tm.mlp(X), atol=1e-5)
    assert np.allclose(model.predict({"inputs": X.tolist()})["outputs"], tm.mlp(X), atol=1e-5)
    (out,) = model.predict(InferRequest("m", [Tensor.from_numpy("x", X)])).outputs
    assert out.name == "scores" and np.allclose(out.data, tm.mlp(X), atol=1e-5)


def test_a_named_signature_with_several_inputs_and_outputs(saved: Path) -> None:
    model = loaded(saved, signature_name="pair")
    rows = model.predict({"instances": [{"a": [1, 2], "b": [3, 4]}, {"a": [0, 1], "b": [1, 1]}]})
    assert rows == {
        "predictions": [{"product": [3.0, 8.0], "total": [4.0, 6.0]}, {"product": [0.0, 1.0], "total": [1.0, 2.0]}]
    }
    columns = model.predict({"inputs": {"a": [[1, 2]], "b": [[3, 4]]}})
    assert columns == {"outputs": {"product": [[3.0, 8.0]], "total": [[4.0, 6.0]]}}


def test_refusals(saved: Path) -> None:
    model = loaded(saved, signature_name="pair")
    with pytest.raises(InvalidInput, match="each instance is an object of them"):
        model.predict({"instances": [[1, 2]]})
    with pytest.raises(InvalidInput, match="either"):
        model.predict({"instances": [], "inputs": {}})
    with pytest.raises(InvalidInput, match="missing input 'b'"):
        model.predict({"inputs": {"a": [[1, 2]]}})
    with pytest.raises(InvalidInput, match=r"the model expects \[-1, 4\]"):
        loaded(saved).predict({"instances": [[1, 2, 3]]})
    with pytest.raises(ModelLoadError, match="has no signature 'nope' \\(it has: pair, serving_default\\)"):
        loaded(saved, signature_name="nope")
