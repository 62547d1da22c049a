"""Model API payload helpers: V1 and V2 inputs into model inputs, results into responses."""

from __future__ import annotations

import numpy as np
import pytest

from modelplane.model.payload import predict_input, predict_response, v2_input
from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.types import InferRequest, InferResponse, Tensor


def _req(*tensors, **kw):
    return InferRequest("m", list(tensors), **kw)


def test_single_input_is_passed_as_is():
    x = np.ones((2, 4), np.float32)
    assert v2_input(_req(Tensor.from_numpy("a", x))) is x


def test_several_numeric_inputs_become_columns():
    out = v2_input(_req(Tensor.from_numpy("a", [1.0, 2.0]), Tensor.from_numpy("b", [[3.0, 4.0], [5.0, 6.0]])))
    assert out.tolist() == [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]


def test_inputs_with_different_row_counts_are_rejected():
    with pytest.raises(InvalidInput):
        v2_input(_req(Tensor.from_numpy("a", [1.0, 2.0]), Tensor.from_numpy("b", [1.0])))


def test_bytes_and_numbers_become_a_dataframe():
    words = np.array([b"x", b"y"], dtype=object)
    df = v2_input(_req(Tensor("w", "BYTES", [2], words), Tensor.from_numpy("n", [1, 2])))
    assert list(df.columns) == ["w", "n"] and df["w"].tolist() == ["x", "y"]


def test_v1_rows_of_dicts_are_a_dataframe_and_lists_an_array():
    assert list(predict_input({"instances": [{"a": 1}, {"a": 2}]})["a"]) == [1, 2]
    assert predict_input({"inputs": [[1, 2]]}).shape == (1, 2)
    with pytest.raises(InvalidInput):
        predict_input({"something": 1})


def test_predict_response_shapes():
    req = _req(Tensor.from_numpy("a", [1]), id="r")
    v2 = predict_response(req, np.array([3, 4]), "m")
    assert isinstance(v2, InferResponse) and v2.id == "r" and v2.outputs[0].name == "output-0"
    assert predict_response({"instances": [1]}, np.array([3]), "m") == {"predictions": [3]}
