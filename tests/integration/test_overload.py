"""Overload control over the wire: bounded queue → 429 / RESOURCE_EXHAUSTED with Retry-After, request deadlines,
and graceful shutdown that lets in-flight requests finish."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from support import server as srv
from support.observe import metric, wait_for

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

ROW = {"instances": [[1, 2]]}
LIMITS = ["--max-concurrency", "1", "--max-queue", "2"]


@pytest.fixture
def limited(tmp_path, logs):
    gate = tmp_path / "gate"
    server = srv.start(
        ["serve", "--model-class", "support.models:Gate", "--model-name", "gate", *LIMITS],
        logs,
        env={"GATE_FILE": str(gate)},
    )
    yield server, gate
    gate.touch()
    server.stop()


def post(server, headers=None):
    return httpx.post(f"{server.http}/v1/models/gate:predict", json=ROW, headers=headers, timeout=60)


def depth(server):
    return metric(server.http, "modelplane_queue_depth", model_name="gate")


def grpc_infer(server):
    req = pb.ModelInferRequest(model_name="gate")
    inp = req.inputs.add(name="x", datatype="INT32", shape=[1, 2])
    inp.contents.int_contents.extend([1, 2])
    with grpc.insecure_channel(server.grpc) as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=60)


def test_a_full_queue_is_refused_fast_and_everything_admitted_completes(limited):
    server, gate = limited
    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(post, server)
        queued = [pool.submit(post, server)]
        wait_for(lambda: depth(server) == 1, "one request queued behind the running one")
        expired = post(server, {"x-request-timeout-ms": "150"})  # queued, then its deadline passes
        assert expired.status_code == 504 and "deadline" in expired.json()["error"]
        queued.append(pool.submit(post, server))
        wait_for(lambda: depth(server) == 2, "the queue to be full")
        refused = post(server)
        assert refused.status_code == 429 and "overloaded" in refused.json()["error"]
        assert int(refused.headers["retry-after"]) >= 1
        with pytest.raises(grpc.RpcError) as info:
            grpc_infer(server)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(info.value.trailing_metadata())["retry-after"]
        gate.touch()
        assert [f.result().json() for f in (running, *queued)] == [{"predictions": [[2, 4]]}] * 3
    assert metric(server.http, "modelplane_rejected_requests_total", model_name="gate", reason="overloaded") == 2
    assert metric(server.http, "modelplane_rejected_requests_total", model_name="gate", reason="deadline") == 1
    assert post(server).status_code == 200 and server.alive()  # full recovery


def test_bad_timeout_headers_are_400(limited):
    server, gate = limited
    gate.touch()
    for value in ("soon", "-5", "0", "nan"):
        r = post(server, {"x-request-timeout-ms": value})
        assert r.status_code == 400 and "x-request-timeout-ms" in r.json()["error"]


def test_grpc_deadline_is_honoured_while_queued(limited):
    server, gate = limited
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, server)
        queued = pool.submit(post, server)
        wait_for(lambda: depth(server) == 1, "one request queued")
        req = pb.ModelInferRequest(model_name="gate")
        inp = req.inputs.add(name="x", datatype="INT32", shape=[1, 2])
        inp.contents.int_contents.extend([1, 2])
        with grpc.insecure_channel(server.grpc) as channel, pytest.raises(grpc.RpcError) as info:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gate.touch()
        assert running.result().status_code == 200 and queued.result().status_code == 200


def test_sigterm_lets_in_flight_requests_finish(limited):
    server, gate = limited
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, server)
        queued = pool.submit(post, server)
        wait_for(lambda: depth(server) == 1, "one request running and one queued")
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _refuses_connections(server), "the server to stop accepting new connections")
        gate.touch()
        assert running.result().json() == {"predictions": [[2, 4]]}
        assert queued.result().json() == {"predictions": [[2, 4]]}
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    assert "Traceback" not in server.log()


def _refuses_connections(server) -> bool:
    try:
        httpx.get(f"{server.http}/v2/health/live", timeout=1)
    except httpx.TransportError:
        return True
    return False


def test_a_queued_request_whose_client_leaves_is_dropped_and_never_run(limited):
    """The report: work for clients that gave up kept the model busy; a fresh request waited 14-75 s."""
    server, gate = limited
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, server)
        queued = pool.submit(post, server)
        wait_for(lambda: depth(server) == 1, "one request running and one queued")
        body = b'{"instances": [[1, 2]]}'
        for _ in range(2):  # two clients queue behind them, then hang up
            sock = srv.raw_post(server.http_port, "/v1/models/gate:predict", body)
            wait_for(lambda: depth(server) == 2, "the request to be queued")
            sock.close()
            wait_for(lambda: depth(server) == 1, "the abandoned request to leave the queue")
        gate.touch()
        assert running.result().status_code == 200 and queued.result().status_code == 200
    assert metric(server.http, "modelplane_rejected_requests_total", model_name="gate", reason="client_gone") == 2
    assert metric(server.http, "request_predict_seconds_count", model_name="gate") == 2  # the abandoned never ran
