"""PMML models served by `modelplane serve` (JPMML-Evaluator on the JVM): a hand-written regression and a
classification tree with probabilities, over V1 (rows and objects), V2 by field over REST and gRPC, metadata from
the model's fields, and values the model refuses answered 400 with the evaluator's reason."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import server as srv

from modelplane.runtimes import detect_runtime

PMML = Path(__file__).resolve().parents[1] / "data" / "pmml"


@pytest.fixture(scope="module")
def server(logs, tmp_path_factory):
    repo = tmp_path_factory.mktemp("pmml")
    for name in ("regression", "tree"):
        (repo / name).mkdir()
        (repo / name / "model.pmml").write_bytes((PMML / f"{name}.pmml").read_bytes())
    assert detect_runtime(repo / "tree") == "pmml"
    running = srv.start(["serve", "--model-dir", str(repo)], logs)
    yield running
    running.stop()


def test_v1_rows_and_objects(server):
    rows = httpx.post(f"{server.http}/v1/models/regression:predict", json={"instances": [[1, 1], [0, 2]]})
    assert rows.json() == {"predictions": [{"y": 6.0}, {"y": 7.0}]}  # y = 1 + 2 x1 + 3 x2
    objects = httpx.post(f"{server.http}/v1/models/tree:predict", json={"instances": [{"petal_length": 1.4}]})
    assert objects.json() == {"predictions": [{"species": "setosa", "probability(setosa)": 0.9}]}


def test_v2_by_field_over_rest_and_grpc_and_metadata(server):
    body = {
        "inputs": [
            {"name": "x1", "shape": [2], "datatype": "FP64", "data": [1.0, 0.0]},
            {"name": "x2", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]},
        ]
    }
    out = httpx.post(f"{server.http}/v2/models/regression/infer", json=body).json()["outputs"]
    assert [(o["name"], o["data"]) for o in out] == [("y", [6.0, 7.0])]
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput("petal_length", [2], "FP64")
        inp.set_data_from_numpy(np.array([1.0, 4.0]))
        result = client.infer("tree", [inp])
        assert result.as_numpy("species").tolist() == [b"setosa", b"versicolor"]
        assert result.as_numpy("probability(setosa)").tolist() == [0.9, 0.0]
        meta = client.get_model_metadata("tree", as_json=True)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("petal_length", "FP64")]


def test_values_the_model_refuses_are_400(server):
    refused = httpx.post(f"{server.http}/v1/models/tree:predict", json={"instances": [["abc"]]})
    assert refused.status_code == 400 and 'cannot accept invalid value "abc"' in refused.json()["error"]
    short = httpx.post(f"{server.http}/v1/models/regression:predict", json={"instances": [[1]]})
    assert short.status_code == 400 and "2 fields in order: x1, x2" in short.json()["error"]
