"""/metrics: KServe's stage histograms and request counters, from a per-server registry."""

from __future__ import annotations

import httpx
from conftest import IRIS_V1


def _metric(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not found")


def test_stage_histograms_and_counters(test_models_server):
    base = test_models_server.http
    before = httpx.get(base + "/metrics").text
    assert "request_predict_seconds" in before
    for _ in range(3):
        httpx.post(base + "/v1/models/adder:predict", json={"instances": [[1]]})
    httpx.post(base + "/v1/models/failing:predict", json={"instances": [1]})
    text = httpx.get(base + "/metrics").text
    for stage in ("preprocess", "predict", "postprocess"):
        assert _metric(text, f'request_{stage}_seconds_count{{model_name="adder"}}') == 3
    assert _metric(text, 'modelplane_requests_total{model_name="adder",protocol="rest",status="200"}') == 3
    assert _metric(text, 'modelplane_requests_total{model_name="failing",protocol="rest",status="500"}') == 1


def test_registry_is_per_server(iris_server):
    httpx.post(iris_server.http + "/v1/models/sklearn-iris:predict", json=IRIS_V1)
    text = httpx.get(iris_server.http + "/metrics").text
    assert 'model_name="sklearn-iris"' in text
    assert 'model_name="adder"' not in text
