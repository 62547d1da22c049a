"""The local backend's control loop under faults: a storage server that hangs delays no other InferenceService,
and replicas keep being restarted and probed while a pull is stuck."""

from __future__ import annotations

import os
import shutil
import signal

import httpx
import pytest
from conftest import IRIS_V1
from support.http_store import Store
from support.observe import wait_for
from support.platform import Platform, alive, cli, manifest


@pytest.fixture
def hanging_store(tmp_path, iris_dir):
    root = tmp_path / "www"
    (root / "slow").mkdir(parents=True)
    shutil.copy(iris_dir / "model.joblib", root / "slow" / "model.joblib")
    with Store(root) as store:
        store.hold = "/slow/"
        yield store


def _replicas(p: Platform, name: str) -> list[dict]:
    import json

    saved = json.loads((p.home / "replicas.json").read_text())["replicas"]
    return [r for r in saved if r["revision"].startswith(f"default.{name}-predictor-")]


def test_a_hanging_pull_delays_no_other_isvc(tmp_path, iris_dir, hanging_store):
    home = tmp_path / "home"
    home.mkdir()
    p = Platform(home)
    p.up()
    try:
        stuck = manifest(tmp_path, f"{hanging_store.url}/slow/model.joblib")  # type: ignore[arg-type]
        stuck.write_text(stuck.read_text().replace("name: sklearn-iris", "name: stuck"))
        cli(home, "apply", "-f", str(stuck))
        wait_for(lambda: hanging_store.held >= 1, "the pull to reach the storage server and hang")

        quick = manifest(tmp_path, iris_dir)
        quick.write_text(quick.read_text().replace("name: sklearn-iris", "name: quick"))
        cli(home, "apply", "-f", str(quick))
        wait_for(lambda: p.ready("quick"), "the second isvc to become Ready while the first one's pull hangs", 60)
        assert not p.ready("stuck") and hanging_store.held >= 1 and not hanging_store.release.is_set()

        url = f"{p.gateway}/serving/default/quick/v1/models/quick:predict"
        assert httpx.post(url, json=IRIS_V1, timeout=10).json()["predictions"] == [1, 1]
        [replica] = _replicas(p, "quick")
        os.kill(replica["pid"], signal.SIGKILL)  # the loop still reaps and restarts while the pull hangs
        wait_for(lambda: not alive(replica["pid"]), "the killed replica to be gone")
        wait_for(
            lambda: [r["pid"] for r in _replicas(p, "quick")] not in ([], [replica["pid"]]) and p.ready("quick"),
            "the killed replica to be replaced",
            60,
        )
        assert httpx.post(url, json=IRIS_V1, timeout=10).status_code == 200

        hanging_store.release.set()  # the storage server answers at last: the first isvc comes up too
        wait_for(lambda: p.ready("stuck"), "the first isvc to become Ready once its pull completes", 60)
    finally:
        hanging_store.release.set()
        p.shutdown()


class Clients:
    """`n` HTTP and `n` gRPC clients sending predictions back to back until stopped; what each request got."""

    def __init__(self, p: Platform, name: str, n: int) -> None:
        import threading

        self.stop = threading.Event()
        self.http: list[int] = []
        self.grpc: list[str] = []
        self.url = f"{p.gateway}/serving/default/{name}/v1/models/{name}:predict"
        self.target, self.name = f"127.0.0.1:{p.grpc_port}", name
        self.threads = [threading.Thread(target=self._rest) for _ in range(n)]
        self.threads += [threading.Thread(target=self._grpc) for _ in range(n)]

    def _rest(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                self.http.append(client.post(self.url, json=IRIS_V1).status_code)

    def _grpc(self) -> None:
        import grpc

        from modelplane.grpcproto import inference_pb2 as pb
        from modelplane.grpcproto import inference_pb2_grpc as pb_grpc

        req = pb.ModelInferRequest(model_name=self.name)
        inp = req.inputs.add(name="input-0", datatype="FP32", shape=[2, 4])
        inp.contents.fp32_contents.extend([v for row in IRIS_V1["instances"] for v in row])
        route = [("x-modelplane-route", f"/serving/default/{self.name}")]
        with grpc.insecure_channel(self.target) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            while not self.stop.is_set():
                try:
                    stub.ModelInfer(req, metadata=route, timeout=60)
                    self.grpc.append("OK")
                except grpc.RpcError as exc:
                    self.grpc.append(f"{exc.code().name}: {exc.details()}")

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def test_kill_9_of_the_only_replica_under_load_costs_no_request(tmp_path, iris_dir):
    home = tmp_path / "home"
    home.mkdir()
    p = Platform(home)
    p.up()
    try:
        path = manifest(tmp_path, iris_dir, minReplicas=1, maxReplicas=1)
        path.write_text(path.read_text().replace("name: sklearn-iris", "name: solo"))
        cli(home, "apply", "-f", str(path))
        wait_for(lambda: p.ready("solo"), "the isvc to be Ready", 60)
        with Clients(p, "solo", 4) as load:  # c=8: 4 REST + 4 gRPC clients
            wait_for(lambda: len(load.http) > 50 and len(load.grpc) > 50, "traffic on both protocols")
            [replica] = _replicas(p, "solo")
            os.kill(replica["pid"], signal.SIGKILL)
            wait_for(
                lambda: any(r["pid"] != replica["pid"] and r["ready"] for r in _replicas(p, "solo")),
                "the replacement replica",
                60,
            )
            seen = (len(load.http), len(load.grpc))
            wait_for(lambda: len(load.http) > seen[0] + 50 and len(load.grpc) > seen[1] + 50, "traffic after it")
        got = {c: load.http.count(c) for c in set(load.http)}, {c: load.grpc.count(c) for c in set(load.grpc)}
        assert set(load.http) == {200} and set(load.grpc) == {"OK"}, got
    finally:
        p.shutdown()
