"""The payload logger against a real HTTP sink: binary CloudEvents for REST V1, V2 and gRPC; a slow or dead sink
never slows or fails inference, and what it could not take is counted."""

from __future__ import annotations

import grpc
import httpx
import orjson
import pytest
from conftest import IRIS_V1, IRIS_V2
from support import server as srv
from support.observe import metric, wait_for
from support.sink import Sink

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

LOGGER = ["--inference-service", "iris-isvc", "--namespace", "ns1", "--component", "predictor"]
LOGGER += ["--endpoint", "canary", "--metadata-headers", "X-Tenant"]


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def serve_logged(iris_dir, logs, url, *extra):
    args = ["serve", "--model-dir", str(iris_dir), "--model-name", "iris", "--log-url", url, *LOGGER, *extra]
    return srv.start(args, logs)


def test_each_request_and_response_is_a_binary_cloudevent(iris_dir, logs, sink):
    server = serve_logged(iris_dir, logs, sink.url)
    try:
        v1 = httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1, headers={"X-Tenant": "t1"})
        v2 = httpx.post(f"{server.http}/v2/models/iris/infer", json=IRIS_V2, headers={"ce-id": "my-id"})
        req = pb.ModelInferRequest(model_name="iris")
        inp = req.inputs.add(name="input-0", datatype="FP32", shape=[1, 4])
        inp.contents.fp32_contents.extend([6.8, 2.8, 4.8, 1.4])
        with grpc.insecure_channel(server.grpc) as channel:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req)
        assert v1.status_code == v2.status_code == 200
        wait_for(lambda: len(sink.events) == 6, "six events at the sink")
    finally:
        server.stop()
    by_id: dict[str, dict[str, tuple[dict, bytes]]] = {}
    for headers, body in sink.events:
        assert headers["ce-specversion"] == "1.0"
        assert (headers["ce-inferenceservicename"], headers["ce-namespace"]) == ("iris-isvc", "ns1")
        assert (headers["ce-component"], headers["ce-endpoint"]) == ("predictor", "canary")
        kind = headers["ce-type"].rsplit(".", 1)[1]
        by_id.setdefault(headers["ce-id"], {})[kind] = (headers, body)
    assert len(by_id) == 3 and all(set(pair) == {"request", "response"} for pair in by_id.values())
    assert "my-id" in by_id  # an incoming ce-id is kept, so the pair correlates with the caller's event
    v1_pair = next(p for p in by_id.values() if p["request"][1] == orjson.dumps(IRIS_V1))
    assert orjson.loads(v1_pair["response"][1]) == {"predictions": [1, 1]}
    assert orjson.loads(v1_pair["request"][0]["ce-metadata"]) == {"X-Tenant": ["t1"]}
    assert orjson.loads(by_id["my-id"]["response"][1])["outputs"][0]["data"] == [1, 1]
    grpc_pair = next(p for p in by_id.values() if p["request"][0]["content-type"] == "application/grpc+proto")
    assert pb.ModelInferRequest.FromString(grpc_pair["request"][1]).model_name == "iris"
    assert pb.ModelInferResponse.FromString(grpc_pair["response"][1]).model_name == "iris"


def test_request_mode_logs_requests_only(iris_dir, logs, sink):
    server = serve_logged(iris_dir, logs, sink.url, "--log-mode", "request")
    try:
        for _ in range(3):
            assert httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1).status_code == 200
        wait_for(lambda: metric(server.http, "modelplane_payload_log_sent_total", model_name="iris") == 3, "3 sent")
    finally:
        server.stop()
    assert {h["ce-type"] for h, _ in sink.events} == {"org.kubeflow.serving.inference.request"}


def test_a_dead_sink_fails_nothing_and_is_counted(iris_dir, logs):
    dead = f"http://127.0.0.1:{srv.free_port()}/events"  # nothing listens there
    server = serve_logged(iris_dir, logs, dead)
    try:
        for _ in range(10):
            r = httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1)
            assert r.json() == {"predictions": [1, 1]}
        wait_for(
            lambda: metric(server.http, "modelplane_payload_log_dropped_total", model_name="iris") == 20,
            "20 undeliverable events counted",
        )
    finally:
        server.stop()


def test_a_stalled_sink_fills_a_bounded_queue_and_the_rest_is_dropped(iris_dir, logs, sink):
    sink.open.clear()  # every delivery hangs until the test lets go
    server = serve_logged(iris_dir, logs, sink.url, "--log-queue-size", "4")
    try:
        for _ in range(20):
            r = httpx.post(f"{server.http}/v1/models/iris:predict", json=IRIS_V1)
            assert r.json() == {"predictions": [1, 1]}
        dropped = metric(server.http, "modelplane_payload_log_dropped_total", model_name="iris")
        assert dropped >= 40 - 4 - 4  # at most 4 queued + 4 in the senders' hands
        sink.open.set()
        wait_for(
            lambda: metric(server.http, "modelplane_payload_log_sent_total", model_name="iris") == 40 - dropped,
            "the held events to be delivered",
        )
    finally:
        server.stop()
