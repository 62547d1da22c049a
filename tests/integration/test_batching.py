"""Adaptive batching over the wire: REST JSON, REST binary and gRPC requests merge into one model call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from support import server as srv
from support.observe import metric, wait_for

BATCH = ["--max-batch-size", "32", "--max-latency", "50"]


@pytest.fixture
def gated(tmp_path, logs):
    gate = tmp_path / "gate"
    server = srv.start(
        ["serve", "--model-class", "support.models:Gate", "--model-name", "gate", "--enable-batcher", *BATCH],
        logs,
        env={"GATE_FILE": str(gate)},
    )
    yield server, gate
    gate.touch()
    server.stop()


def v2_json(base, value):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [value] * 4}]}
    r = httpx.post(f"{base}/v2/models/gate/infer", json=body, timeout=60)
    return r.status_code, r.json()


def v2_binary(hostport, value):
    client = httpclient.InferenceServerClient(hostport, network_timeout=60)
    inp = httpclient.InferInput("x", [1, 4], "FP32")
    inp.set_data_from_numpy(np.full((1, 4), value, dtype=np.float32), binary_data=True)
    out = httpclient.InferRequestedOutput("doubled", binary_data=True)
    return client.infer("gate", [inp], outputs=[out]).as_numpy("doubled")


def v2_grpc(target, value):
    with grpcclient.InferenceServerClient(target) as client:
        inp = grpcclient.InferInput("x", [1, 4], "FP32")
        inp.set_data_from_numpy(np.full((1, 4), value, dtype=np.float32))
        return client.infer("gate", [inp], client_timeout=60).as_numpy("doubled")


def queued(server):
    return metric(server.http, "modelplane_batch_queue_depth", model_name="gate")


def batches(server):
    return metric(server.http, "modelplane_batch_size_count", model_name="gate"), metric(
        server.http, "modelplane_batch_size_sum", model_name="gate"
    )


def test_rest_json_rest_binary_and_grpc_requests_share_one_batch(gated):
    server, gate = gated
    with ThreadPoolExecutor(16) as pool:
        blocker = pool.submit(v2_json, server.http, 0.0)
        wait_for(lambda: batches(server)[0] == 1, "the first request to reach the model")
        jobs = [pool.submit(v2_json, server.http, float(i)) for i in range(1, 5)]
        jobs += [pool.submit(v2_binary, server.http_hostport, float(i)) for i in range(5, 9)]
        jobs += [pool.submit(v2_grpc, server.grpc, float(i)) for i in range(9, 13)]
        wait_for(lambda: queued(server) == 12, "12 requests queued behind the busy model")
        gate.touch()
        assert blocker.result()[0] == 200
        results = [j.result() for j in jobs]
    for i, (status, body) in enumerate(results[:4], start=1):
        assert status == 200 and body["outputs"][0]["data"] == [2.0 * i] * 4
    for i, array in enumerate(results[4:], start=5):
        assert array.tolist() == [[2.0 * i] * 4]  # each caller gets exactly its own row back
    assert batches(server) == (2, 13)  # the blocker alone, then all twelve in one call


def test_v1_instances_are_batched_and_a_bad_batch_fails_only_its_callers(gated):
    server, gate = gated
    url = f"{server.http}/v1/models/gate:predict"
    with ThreadPoolExecutor(8) as pool:
        blocker = pool.submit(httpx.post, url, json={"instances": [[1, 1]]}, timeout=60)
        wait_for(lambda: batches(server)[0] == 1, "the first request to reach the model")
        good = [pool.submit(httpx.post, url, json={"instances": [[i, i], [i, 0]]}, timeout=60) for i in (2, 3)]
        poisoned = pool.submit(httpx.post, url, json={"instances": [[-1, -1]]}, timeout=60)
        wait_for(lambda: queued(server) == 3, "3 requests queued")
        gate.touch()
        assert blocker.result().json() == {"predictions": [[2, 2]]}
        outcomes = [f.result() for f in (*good, poisoned)]
    assert [r.status_code for r in outcomes] == [500, 500, 500]  # one batch: its callers share its fate
    assert "poisoned row" in outcomes[2].json()["error"]
    r = httpx.post(url, json={"instances": [[4, 4]]})  # the model and the batcher carry on
    assert r.json() == {"predictions": [[8, 8]]}
    count, rows = batches(server)
    assert count == 3 and rows == 1 + 5 + 1


def test_a_batched_request_whose_client_leaves_is_dropped_and_never_run(gated):
    """Issue 13: work for clients that gave up kept the model busy. Queued in the batcher, an abandoned request
    leaves the queue and never reaches the model; the others are served."""
    server, gate = gated
    with ThreadPoolExecutor(2) as pool:
        blocker = pool.submit(v2_json, server.http, 1.0)
        wait_for(lambda: batches(server)[0] == 1, "the first request to reach the model")
        body = b'{"instances": [[1, 2, 3, 4]]}'
        for _ in range(2):  # two clients queue behind it in the batcher, then hang up
            sock = srv.raw_post(server.http_port, "/v1/models/gate:predict", body)
            wait_for(lambda: queued(server) == 1, "the request to be queued")
            sock.close()
            wait_for(lambda: queued(server) == 0, "the abandoned request to leave the queue")
        waiting = pool.submit(v2_json, server.http, 2.0)
        wait_for(lambda: queued(server) == 1, "a live request queued")
        gate.touch()
        assert blocker.result()[0] == 200 and waiting.result()[0] == 200
    assert metric(server.http, "modelplane_rejected_requests_total", model_name="gate", reason="client_gone") == 2
    assert batches(server) == (2, 2)  # two batches of one row each: the abandoned rows never ran
