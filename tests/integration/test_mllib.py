"""A Spark MLlib PipelineModel (VectorAssembler + LogisticRegression, fitted in the test) served by `modelplane
serve` in Spark's local mode: V1 rows as lists and as objects, V2 by column and as one 2-D input with the
probability column, over REST and gRPC; a wrong row answered 400; and a KServe-format isvc with
`modelFormat: mllib` through the gateway. Costs ~30 s in CI (two JVMs start)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import server as srv
from support.observe import wait_for
from support.platform import applied, cli

FIT = """
import sys
from pyspark.sql import SparkSession
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.classification import LogisticRegression
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
rows = [(1.0, 0.0, 0.0), (0.0, 1.0, 1.0), (0.9, 0.1, 0.0), (0.1, 0.9, 1.0)]
df = spark.createDataFrame(rows, ["a", "b", "label"])
stages = [VectorAssembler(inputCols=["a", "b"], outputCol="features"), LogisticRegression(maxIter=20)]
Pipeline(stages=stages).fit(df).write().overwrite().save(sys.argv[1])
spark.stop()
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    model = tmp_path_factory.mktemp("mllib") / "pipeline"
    subprocess.run([sys.executable, "-c", FIT, str(model)], check=True, capture_output=True, timeout=300)
    return model


@pytest.fixture(scope="module")
def server(pipeline, logs):
    running = srv.start(["serve", "--model-dir", str(pipeline), "--model-name", "spark", "--intra_op_threads", "1"],
                        logs, timeout=180)  # fmt: skip
    yield running
    running.stop()


def test_v1_rows_as_lists_and_objects(server):
    rows = httpx.post(f"{server.http}/v1/models/spark:predict", json={"instances": [[1.0, 0.0], [0.0, 1.0]]})
    assert rows.json() == {"predictions": [0.0, 1.0]}
    objects = httpx.post(f"{server.http}/v1/models/spark:predict", json={"instances": [{"a": 0.05, "b": 0.95}]})
    assert objects.json() == {"predictions": [1.0]}


def test_v2_by_column_over_rest_and_one_2d_input_over_grpc(server):
    body = {
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP64", "data": [1.0, 0.0]},
            {"name": "b", "shape": [2], "datatype": "FP64", "data": [0.0, 1.0]},
        ]
    }
    outputs = {o["name"]: o for o in httpx.post(f"{server.http}/v2/models/spark/infer", json=body).json()["outputs"]}
    assert outputs["prediction"]["data"] == [0.0, 1.0] and outputs["probability"]["shape"] == [2, 2]
    with grpcclient.InferenceServerClient(server.grpc) as client:
        inp = grpcclient.InferInput("rows", [2, 2], "FP64")
        inp.set_data_from_numpy(np.array([[1.0, 0.0], [0.0, 1.0]]))
        result = client.infer("spark", [inp])
    probability = result.as_numpy("probability")
    assert result.as_numpy("prediction").tolist() == [0.0, 1.0]
    assert np.allclose(probability.sum(axis=1), 1.0) and probability[0, 0] > 0.5 > probability[1, 0]


def test_a_wrong_row_is_400(server):
    r = httpx.post(f"{server.http}/v1/models/spark:predict", json={"instances": [[1.0]]})
    assert r.status_code == 400 and "2 columns in order: a, b" in r.json()["error"]
    missing = httpx.post(f"{server.http}/v1/models/spark:predict", json={"instances": [{"a": 1.0}]})
    assert missing.status_code == 400 and "the pipeline refused the input" in missing.json()["error"]


@pytest.mark.timeout(300)
def test_a_kserve_format_isvc_with_modelformat_mllib_through_the_gateway(pipeline, tmp_path):
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "spark"},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "mllib"}, "storageUri": str(pipeline)}}},
    }
    with applied(tmp_path, [doc]) as plat:
        wait_for(lambda: plat.ready("spark"), "the Spark InferenceService Ready", timeout=240)
        url = f"{plat.gateway}/serving/default/spark/v1/models/spark:predict"
        assert httpx.post(url, json={"instances": [[1.0, 0.0], [0.0, 1.0]]}, timeout=60).json() == {
            "predictions": [0.0, 1.0]
        }
        assert "modelplane-mllibserver" in cli(plat.home, "get", "isvc", "spark", "-o", "yaml").stdout
