"""The agent the Kubernetes backend renders in front of a runtime that is not modelplane's (KServe's agent
sidecar's job), run as it is rendered — `modelplane serve` with the passthrough model — in front of a real
runtime process: requests reach the runtime in the protocol they came in, the payload logger records both
directions, and the adaptive batcher merges concurrent V1 requests into fewer upstream calls."""

from __future__ import annotations

import concurrent.futures

import httpx
import orjson
import pytest
from conftest import IRIS_V1, IRIS_V2
from support import server as srv
from support.observe import metric, wait_for
from support.sink import Sink

from modelplane.backends.kubernetes.render.pod import AGENT_MODEL


@pytest.fixture
def runtime(iris_dir, logs):
    server = srv.start(["serve", "--model-dir", str(iris_dir), "--model-name", "iris"], logs)
    yield server
    server.stop()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def agent(runtime: srv.RunningServer, logs, *extra: str) -> srv.RunningServer:
    args = ["serve", "--model-class", AGENT_MODEL, "--model-name", "iris", "--predictor_host", runtime.http_hostport]
    return srv.start([*args, "--enable-grpc", "false", *extra], logs)


def test_the_agent_forwards_both_protocols_and_logs_both_directions(runtime, logs, sink) -> None:
    front = agent(runtime, logs, "--log-url", sink.url, "--inference-service", "iris", "--namespace", "ml")
    try:
        v1 = httpx.post(f"{front.http}/v1/models/iris:predict", json=IRIS_V1)
        v2 = httpx.post(f"{front.http}/v2/models/iris/infer", json=IRIS_V2)
        direct = httpx.post(f"{runtime.http}/v1/models/iris:predict", json=IRIS_V1)
        assert v1.status_code == v2.status_code == 200
        assert v1.json() == direct.json() == {"predictions": [1, 1]}
        assert v2.json()["outputs"][0]["data"] == [1, 1]
        assert metric(runtime.http, "modelplane_requests_total", model_name="iris", protocol="rest") == 3
        wait_for(lambda: len(sink.events) == 4, "a request and a response event per call")
    finally:
        front.stop()
    kinds = sorted(h["ce-type"].rsplit(".", 1)[1] for h, _ in sink.events)
    assert kinds == ["request", "request", "response", "response"]
    assert orjson.dumps(IRIS_V1) in [body for _, body in sink.events]


def test_the_agent_batches_concurrent_requests_into_fewer_upstream_calls(runtime, logs) -> None:
    front = agent(runtime, logs, "--enable-batcher", "--max-batch-size", "16", "--max-latency", "200")
    one = {"instances": [[6.8, 2.8, 4.8, 1.4]]}
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{front.http}/v1/models/iris:predict", json=one), range(32)))
    finally:
        front.stop()
    assert all(a.status_code == 200 and a.json() == {"predictions": [1]} for a in answers)
    upstream = metric(runtime.http, "modelplane_requests_total", model_name="iris", protocol="rest")
    assert upstream < 32  # merged: each upstream call carried several clients' instances
