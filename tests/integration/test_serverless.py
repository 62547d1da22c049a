"""Serverless mode end to end on loopback: scale to zero after the grace period and back on a burst of 50
concurrent requests, scale-out under sustained load and back, containerConcurrency as a hard limit, and raw mode's
CPU autoscaling. The platform runs with shortened Knative windows from its config-autoscaler file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import IRIS_V1
from support.observe import wait_for
from support.platform import Platform, alive, cli, manifest

FAST = {"stable-window": "6s", "scale-to-zero-grace-period": "1s", "tick-interval": "0.5s"}
FAST_HPA = {"hpa-sync-period": "1s", "hpa-scale-down-stabilization-window": "3s"}


@pytest.fixture
def platform(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config-autoscaler"}}
    (home / "config-autoscaler.yaml").write_text(yaml.safe_dump({**config, "data": {**FAST, **FAST_HPA}}))
    p = Platform(home)
    p.up()
    yield p
    p.shutdown()


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> Path:
    from modelplane.samples.iris import train_sklearn

    return train_sklearn(tmp_path_factory.mktemp("iris"))


def scaling(p: Platform, name: str) -> dict[str, Any]:
    """The autoscaling state of the predictor's newest revision, from the InferenceService status."""
    entries = ((p.isvc(name).get("status") or {}).get("components") or {}).get("predictor", {}).get("autoscaling")
    return entries[-1] if entries else {}


def probe_isvc(tmp_path: Path, name: str, **predictor: Any) -> Path:
    container = {
        "name": "kserve-container",
        "image": "example.com/probe",
        "command": ["python", "-m", "concurrency_probe"],
    }
    container["args"] = ["--model_name", name, *predictor.pop("args", [])]
    if "resources" in predictor:
        container["resources"] = predictor.pop("resources")
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": predictor.pop("annotations", {})},
        "spec": {"predictor": {**predictor, "containers": [container]}},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def burst(url: str, n: int, body: dict[str, Any]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            return await asyncio.gather(*(client.post(url, json=body) for _ in range(n)))

    return asyncio.run(main())


class Load:
    """Clients in threads, each sending requests back to back until stopped."""

    def __init__(self, url: str, clients: int, body: dict[str, Any]) -> None:
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.threads = [threading.Thread(target=self._run, args=(url, body)) for _ in range(clients)]

    def _run(self, url: str, body: dict[str, Any]) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                self.codes.append(client.post(url, json=body).status_code)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_scale_to_zero_after_grace_then_fifty_concurrent_requests_all_succeed(platform: Platform, iris: Path, tmp_path):
    name = "sklearn-iris-zero"
    # the zygote starts with the platform (before any replica needs it), on a home that was empty
    wait_for(lambda: (platform.home / "zygote.sock").exists(), "the zygote to start with the platform", timeout=60)
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, iris, "sklearn-iris-scale-to-zero.yaml")))
    wait_for(lambda: platform.ready(name), "the isvc to be Ready", timeout=60)
    url = f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict"
    assert httpx.post(url, json=IRIS_V1).status_code == 200
    pids = platform.replica_pids()
    assert pids
    wait_for(lambda: not platform.replica_pids(), "scale to zero", timeout=60)
    assert not any(alive(pid) for pid in pids)
    state = scaling(platform, name)
    assert state["desiredReplicas"] == 0 and state["actualReplicas"] == 0
    assert "scaled to zero" in state["reason"]
    assert platform.ready(name)  # a revision at zero still serves, through the activator
    platform.stop()  # a control-plane restart finds it at zero and leaves it there
    platform.up()
    wait_for(lambda: scaling(platform, name).get("reason", "").startswith("at zero"), "the resumed state")
    assert platform.ready(name) and not platform.replica_pids()

    responses = burst(url, 50, IRIS_V1)
    assert [r.status_code for r in responses] == [200] * 50
    assert all(r.json() == {"predictions": [1, 1]} for r in responses)
    state = scaling(platform, name)
    assert state["actualReplicas"] >= 1 and "activation" in state["reason"]
    metrics_url = f"http://127.0.0.1:{platform.api_port}/metrics"
    wait_for(
        lambda: (
            'modelplane_cold_start_phase_seconds_count{phase="boot"} 1.0'
            in httpx.get(metrics_url, headers=platform.headers).text
        ),
        "the cold start in the metrics",
    )
    metrics = httpx.get(metrics_url, headers=platform.headers).text
    assert f'modelplane_autoscaler_desired_replicas{{component="predictor",inferenceservice="{name}"' in metrics
    assert "modelplane_autoscaler_excess_burst_capacity{" in metrics

    # back to zero, then a gRPC request through the gateway's gRPC side wakes it the same way
    wait_for(lambda: not platform.replica_pids(), "scale to zero again", timeout=60)
    import grpc

    from modelplane.grpcproto import inference_pb2 as pb
    from modelplane.grpcproto import inference_pb2_grpc as pb_grpc
    from modelplane.grpcproto.client import decode_response

    req = pb.ModelInferRequest(model_name=name)
    inp = req.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
    inp.contents.fp32_contents.extend([v for row in IRIS_V1["instances"] for v in row])
    with grpc.insecure_channel(f"127.0.0.1:{platform.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(req, metadata=[("x-modelplane-route", f"/serving/default/{name}")], timeout=60)
    assert decode_response(reply).outputs[0].data.reshape(-1).tolist() == [1, 1]


def test_sustained_load_scales_out_and_back_down(platform: Platform, tmp_path):
    path = probe_isvc(tmp_path, "probe-load", minReplicas=1, maxReplicas=3, scaleTarget=1)
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: platform.ready("probe-load"), "the isvc to be Ready", timeout=60)
    url = f"{platform.gateway}/serving/default/probe-load/v1/models/probe-load:predict"
    with Load(url, clients=4, body={"instances": [1]}) as load:
        wait_for(lambda: scaling(platform, "probe-load").get("readyReplicas", 0) > 1, "scale-out", timeout=60)
    assert load.codes and set(load.codes) == {200}
    state = scaling(platform, "probe-load")
    assert state["desiredReplicas"] > 1 and state["desiredReplicas"] <= 3
    wait_for(lambda: scaling(platform, "probe-load").get("actualReplicas") == 1, "scale back to min", timeout=60)
    # stops are asynchronous (signalled, then drained): the extra processes are Terminating until they exit
    wait_for(lambda: len(platform.replica_pids()) == 1, "the scaled-down replicas to exit", timeout=30)


def test_container_concurrency_one_never_lets_two_requests_reach_a_replica(platform: Platform, tmp_path):
    for name, cc in (("probe-one", 1), ("probe-any", 0)):
        path = probe_isvc(tmp_path, name, containerConcurrency=cc, minReplicas=1, maxReplicas=1)
        cli(platform.home, "apply", "-f", str(path))
    for name in ("probe-one", "probe-any"):
        wait_for(lambda name=name: platform.ready(name), f"{name} to be Ready", timeout=60)
    peaks = {}
    for name in ("probe-one", "probe-any"):
        url = f"{platform.gateway}/serving/default/{name}/v1/models/{name}:predict"
        responses = burst(url, 12, {"instances": [1]})
        assert [r.status_code for r in responses] == [200] * 12
        peaks[name] = max(r.json()["predictions"][0] for r in responses)
    assert peaks["probe-one"] == 1
    assert peaks["probe-any"] > 1  # the same model without the limit does see concurrent requests


def test_raw_mode_scales_on_cpu_and_never_to_zero(platform: Platform, iris: Path, tmp_path):
    cli(platform.home, "apply", "-f", str(manifest(tmp_path, iris, "sklearn-iris-raw.yaml")))  # KServe's raw sample
    wait_for(lambda: platform.ready("sklearn-iris-raw"), "the raw sample to be Ready", timeout=60)
    sample = scaling(platform, "sklearn-iris-raw")
    assert (sample["class"], sample["metric"], sample["target"], sample["desiredReplicas"]) == ("hpa", "cpu", 60, 1)
    raw = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    path = probe_isvc(
        tmp_path,
        "burner",
        annotations=raw,
        minReplicas=0,
        maxReplicas=2,
        scaleMetric="cpu",
        scaleTarget=50,
        args=["--spin_ms", "20"],
    )
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: platform.ready("burner"), "the isvc to be Ready", timeout=60)
    state = scaling(platform, "burner")
    assert (state["class"], state["metric"], state["desiredReplicas"]) == ("hpa", "cpu", 1)  # minReplicas 0 -> 1
    url = f"{platform.gateway}/serving/default/burner/v1/models/burner:predict"
    with Load(url, clients=2, body={"instances": [1]}):
        wait_for(lambda: scaling(platform, "burner").get("readyReplicas", 0) == 2, "CPU scale-out", timeout=60)
    assert "cpu" in scaling(platform, "burner")["reason"]
    wait_for(lambda: scaling(platform, "burner").get("actualReplicas") == 1, "scale back to one", timeout=60)
    # memory: a replica's resident set against a 20 MiB request is far above a 50% target -> scale out, no load
    path = probe_isvc(
        tmp_path,
        "memory",
        annotations=raw,
        maxReplicas=2,
        scaleMetric="memory",
        scaleTarget=50,
        resources={"requests": {"memory": "20Mi"}},
    )
    cli(platform.home, "apply", "-f", str(path))
    wait_for(lambda: scaling(platform, "memory").get("readyReplicas", 0) == 2, "memory scale-out", timeout=60)
    assert "memory" in scaling(platform, "memory")["reason"]
