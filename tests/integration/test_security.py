"""Attacks on the running platform and model server, over loopback, as a client on the same network would make
them: request smuggling through the gateway, repository traversal, gateway repository calls, namespace confusion,
oversized bodies, idle and slow connections, and reaching the control-plane API."""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
import yaml
from conftest import IRIS_V1
from support import server as srv
from support.observe import wait_for
from support.platform import DATA, Platform, cli

from modelplane.grpcproto import inference_pb2 as pb
from modelplane.grpcproto import inference_pb2_grpc as pb_grpc


def raw_http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes as they are (no client library normalises them) and read until the server closes or pauses."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and len(chunks) > 0:
                    sock.settimeout(0.5)
        except TimeoutError:
            pass
        return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def iris_platform(tmp_path_factory, iris_dir):
    home = tmp_path_factory.mktemp("sec") / "home"
    home.mkdir()
    p = Platform(home)
    p.up("--max-body-bytes", str(8 * 2**20), "--max-connections", "40", "--header-timeout", "1")
    doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
    doc["spec"]["predictor"]["model"]["storageUri"] = str(iris_dir)
    path = home / "iris.yaml"
    path.write_text(yaml.safe_dump(doc))
    cli(home, "apply", "-f", str(path))
    wait_for(lambda: p.ready("sklearn-iris"), "sklearn-iris to be Ready", timeout=60)
    yield p
    p.shutdown()


def infer_body(request_id: str) -> dict:
    return {
        "id": request_id,
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [[6.8, 2.8, 4.8, 1.4]]}],
    }


def test_encoded_crlf_cannot_smuggle_a_request_onto_a_victims_connection(iris_platform):
    """Every victim must get the answer to its own request while attackers send percent-encoded CR/LF paths."""
    gw = iris_platform.port
    # the smuggled request's last header absorbs the rest of the request line the gateway would write after it
    smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Absorb:"
    encoded = "".join(f"%{b:02X}" for b in b" HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled)
    attack = (
        f"GET /serving/default/sklearn-iris/v2/models/sklearn-iris{encoded} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{gw}\r\nConnection: close\r\n\r\n"
    ).encode()
    mismatches: list[str] = []
    attacks: list[int] = []
    stop = threading.Event()

    def victim() -> None:
        with httpx.Client(base_url=iris_platform.gateway) as client:
            while not stop.is_set():
                rid = uuid.uuid4().hex
                r = client.post("/serving/default/sklearn-iris/v2/models/sklearn-iris/infer", json=infer_body(rid))
                if r.status_code != 200 or r.json().get("id") != rid:
                    mismatches.append(f"{r.status_code} {r.text[:120]}")

    def attacker() -> None:
        for _ in range(60):
            attacks.append(status_of(raw_http(gw, attack)))

    threads = [threading.Thread(target=victim) for _ in range(4)] + [
        threading.Thread(target=attacker) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads[4:]:
        t.join(120)
    stop.set()
    for t in threads[:4]:
        t.join(30)
    assert mismatches == []
    assert attacks and all(400 <= code < 500 for code in attacks), attacks[:5]


def test_control_characters_and_non_ascii_targets_are_refused(iris_platform):
    gw = iris_platform.port
    for target in (b"/serving/default/sklearn-iris/v2/health/live\x7f", "/serving/default/sklearn-iris/é".encode()):
        reply = raw_http(gw, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(reply) == 400, reply[:200]
    assert httpx.get(f"{iris_platform.gateway}/serving/default/sklearn-iris/v2/health/ready").status_code == 200


def test_the_gateway_does_not_expose_repository_load_or_unload(iris_platform):
    base = f"{iris_platform.gateway}/serving/default/sklearn-iris"
    for path in ("/v2/repository/models/sklearn-iris/unload", "/v2/repository/models/sklearn-iris/%75nload"):
        r = httpx.post(base + path)
        assert r.status_code == 403 and "modelplane.io/repository-api" in r.json()["error"]
    with grpc.insecure_channel(f"127.0.0.1:{iris_platform.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = (("x-modelplane-route", "/serving/default/sklearn-iris"),)
        with pytest.raises(grpc.RpcError) as info:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sklearn-iris"), metadata=meta)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=meta).models[0].name == "sklearn-iris"
    r = httpx.post(f"{base}/v1/models/sklearn-iris:predict", json=IRIS_V1)
    assert r.status_code == 200 and r.json() == {"predictions": [1, 1]}


def test_bodies_over_the_limit_are_refused_on_both_protocols(iris_platform):
    url = f"{iris_platform.gateway}/serving/default/sklearn-iris/v2/models/sklearn-iris/infer"
    big = b"x" * (9 * 2**20)
    assert httpx.post(url, content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(9):
            yield b"x" * 2**20

    assert httpx.post(url, content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    rows = np.tile(np.array([[6.8, 2.8, 4.8, 1.4]], dtype=np.float32), (393_216, 1))  # 6 MiB: over gRPC's 4 MiB default
    request = pb.ModelInferRequest(model_name="sklearn-iris")
    request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
    request.raw_input_contents.append(rows.tobytes())
    meta = (("x-modelplane-route", "/serving/default/sklearn-iris"),)
    with grpc.insecure_channel(
        f"127.0.0.1:{iris_platform.grpc_port}", options=[("grpc.max_send_message_length", 64 * 2**20)]
    ) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        reply = stub.ModelInfer(request, metadata=meta, timeout=60)
        assert reply.outputs[0].shape == [393_216]
        request.raw_input_contents[0] = rows.tobytes() + b"\0" * (3 * 2**20)  # 9 MiB
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, metadata=meta, timeout=60)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _idle_connections_are_capped_and_closed(port: int, cap: int) -> None:
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(cap)]
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
        extra.close()
        for sock in idle:  # the header deadline closes connections that never send a request
            assert sock.recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
    closed = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not closed:  # one header byte at a time never finishes the headers
        try:
            slow.sendall(b"X")
            slow.settimeout(0.2)
            closed = slow.recv(1) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
    slow.close()
    assert closed


def _read_to_close(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("http_server", ["modelplane", "uvicorn"])
def test_idle_and_slow_connections_on_the_model_server(iris_dir, logs, http_server):
    args = ["--max-connections", "20", "--header-timeout", "1", "--http-server", http_server]
    server = srv.start(["serve", "--model-dir", str(iris_dir), *args], logs)
    try:
        _idle_connections_are_capped_and_closed(server.http_port, 20)
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:  # a 70 KB head
            sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 70_000 + b"\r\n\r\n")
            answer = _read_to_close(sock)
        assert answer.startswith(b"HTTP/1.1 431 ") and answer.count(b"HTTP/1.1") == 1
        assert httpx.get(server.http + "/v2/health/ready").status_code == 200
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        answer = httpx.post(server.http + "/v2/models/model/infer", json=body)
        assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == [0]
    finally:
        server.stop()


def test_idle_and_slow_connections_on_the_gateway(iris_platform):
    _idle_connections_are_capped_and_closed(iris_platform.port, 40)
    assert httpx.get(f"{iris_platform.gateway}/serving/default/sklearn-iris/v2/health/ready").status_code == 200


def test_a_tiny_request_claiming_a_huge_bytes_tensor_is_400(iris_platform):
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2**27], "datatype": "BYTES", "parameters": {"binary_data_size": 4}}]}
    )
    url = f"{iris_platform.gateway}/serving/default/sklearn-iris/v2/models/sklearn-iris/infer"
    r = httpx.post(url, content=header + b"\0\0\0\0", headers={"inference-header-content-length": str(len(header))})
    assert r.status_code == 400 and "too few" in r.json()["error"]
    request = pb.ModelInferRequest(model_name="sklearn-iris")
    request.inputs.add(name="x", datatype="BYTES", shape=[2**27])
    request.raw_input_contents.append(b"\0\0\0\0")
    with grpc.insecure_channel(f"127.0.0.1:{iris_platform.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = (("x-modelplane-route", "/serving/default/sklearn-iris"),)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, metadata=meta)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:  # bytes that are no protobuf at all
            channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(b"\xff\xff\xff", metadata=meta)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class _Pwn:
    """A pickle that runs a command when loaded: what a repository traversal would reach."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def repository(tmp_path, iris_dir):
    repo = tmp_path / "repo"
    (repo / "iris").mkdir(parents=True)
    (repo / "iris" / "model.joblib").write_bytes((iris_dir / "model.joblib").read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "pwned"
    (outside / "model.pkl").write_bytes(pickle.dumps(_Pwn(str(marker))))
    (repo / "link").symlink_to(outside)
    return repo, outside, marker


def test_repository_load_never_leaves_the_repository(repository, logs):
    repo, outside, marker = repository
    server = srv.start(["serve", "--model-dir", str(repo)], logs)
    try:
        for target in (b"/v2/repository/models/../outside/load", b"/v2/repository/models/..%2Foutside/load"):
            reply = raw_http(server.http_port, b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert 400 <= status_of(reply) < 500, reply[:200]
        r = httpx.post(f"{server.http}/v2/repository/models/link/load")
        assert r.status_code == 403 and "outside the repository" in r.json()["error"]
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for name, code in (
                ("../outside", grpc.StatusCode.INVALID_ARGUMENT),
                (str(outside), grpc.StatusCode.INVALID_ARGUMENT),
                ("..", grpc.StatusCode.INVALID_ARGUMENT),
                ("link", grpc.StatusCode.PERMISSION_DENIED),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name))
                assert info.value.code() == code, name
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="iris"))  # inside: fine
        assert not marker.exists()
    finally:
        server.stop()


def test_model_control_mode_none_refuses_every_mutation(iris_dir, logs):
    server = srv.start(
        ["serve", "--model-dir", str(iris_dir), "--model-name", "iris", "--model-control-mode", "none"], logs
    )
    try:
        for action in ("load", "unload"):
            r = httpx.post(f"{server.http}/v2/repository/models/iris/{action}")
            assert r.status_code == 403 and "model-control-mode" in r.json()["error"]
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="iris"))
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert httpx.get(f"{server.http}/v2/models/iris/ready").status_code == 200
    finally:
        server.stop()


def test_namespaces_never_share_revisions_and_a_recreated_isvc_serves_its_new_model(tmp_path, iris_dir):
    import joblib
    from sklearn.dummy import DummyClassifier

    constant = tmp_path / "constant"
    constant.mkdir()
    joblib.dump(DummyClassifier(strategy="constant", constant=2).fit([[0] * 4] * 3, [2, 0, 1]), constant / "m.joblib")
    p = Platform(tmp_path / "home")
    p.home.mkdir()
    p.up()
    try:

        def apply(namespace: str, uri) -> None:
            doc = yaml.safe_load((DATA / "sklearn-iris.yaml").read_text())
            doc["metadata"]["namespace"] = namespace
            doc["spec"]["predictor"]["model"]["storageUri"] = str(uri)
            path = tmp_path / f"{namespace}-{time.monotonic_ns()}.yaml"
            path.write_text(yaml.safe_dump(doc))
            cli(p.home, "apply", "-f", str(path))

        def predict(namespace: str) -> list | None:
            r = httpx.post(f"{p.gateway}/serving/{namespace}/sklearn-iris/v1/models/sklearn-iris:predict", json=IRIS_V1)
            return r.json().get("predictions") if r.status_code == 200 else None

        apply("default", iris_dir)
        apply("team-b", constant)
        wait_for(lambda: predict("default") == [1, 1] and predict("team-b") == [2, 2], "each namespace's own model")
        cli(p.home, "delete", "isvc", "sklearn-iris")
        apply("default", constant)  # re-created at once, with another model, under the same revision name
        wait_for(lambda: predict("default") == [2, 2], "the re-created isvc to serve its new model", timeout=60)
        assert predict("team-b") == [2, 2]
        status = cli(p.home, "get", "isvc", "sklearn-iris", "-o", "json").stdout
        assert '"latestCreatedRevision": "sklearn-iris-predictor-00001"' in status
    finally:
        p.shutdown()


def test_the_api_stays_on_loopback_and_demands_the_token(tmp_path):
    p = Platform(tmp_path / "home")
    p.home.mkdir()
    p.up("--host", "0.0.0.0")
    try:
        listening = _listening_addresses()
        assert listening[p.api_port] == "127.0.0.1" and listening[p.port] == "0.0.0.0"
        assert oct(os.stat(p.home / "token").st_mode & 0o777) == "0o600"
        api = f"http://127.0.0.1:{p.api_port}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
        assert httpx.get(api).status_code == 401
        assert httpx.get(api, headers={**p.headers, "host": "attacker.example"}).status_code == 421
        assert httpx.get(api, headers=p.headers).status_code == 200
        assert cli(p.home, "get", "isvc").returncode == 0
        cli(p.home, "token", "rotate")
        assert httpx.get(api, headers={"authorization": "Bearer " + "x" * 43}).status_code == 401
        assert cli(p.home, "get", "isvc").returncode == 0  # the CLI reads the new token
    finally:
        p.shutdown()


def _listening_addresses() -> dict[int, str]:
    """port -> IPv4 address of every listening TCP socket, from /proc/net/tcp."""
    out = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            address, port = local.split(":")
            out[int(port, 16)] = socket.inet_ntoa(bytes.fromhex(address)[::-1])
    return out


def _h2_frames(sock: socket.socket) -> list[tuple[int, int, int, bytes]]:
    """Every HTTP/2 frame the server sends until it closes the connection: (type, flags, stream, payload)."""
    data, frames = _read_to_close(sock), []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + length]))
        data = data[9 + length :]
    return frames


def _goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int:
    return next(int.from_bytes(p[4:8], "big") for t, _, _, p in frames if t == 7)


def test_the_grpc_front_end_shrugs_off_hostile_http2(iris_dir, logs):
    """modelplane's own HTTP/2 (the default gRPC server): what grpcio's C core would refuse, it refuses too, and a
    real client is still answered after every attack."""
    server = srv.start(
        ["serve", "--model-dir", str(iris_dir), "--max-connections", "20", "--header-timeout", "1"], logs
    )

    def answered() -> bool:
        request = pb.ModelInferRequest(model_name="model")
        request.inputs.add(name="x", datatype="FP64", shape=[1, 4])
        request.raw_input_contents.append(np.array([[5.1, 3.5, 1.4, 0.2]]).tobytes())
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
        return np.frombuffer(reply.raw_output_contents[0], dtype="<i8").tolist() == [0]

    try:
        _hostile_http2(server.grpc_port, answered, 20)
    finally:
        server.stop()


def test_the_gateways_grpc_side_shrugs_off_hostile_http2(iris_platform):
    """The platform gateway's gRPC side runs on the same HTTP/2 server, with `up`'s connection limits: the same
    attacks are refused, and a call routed through the gateway is still answered after each."""

    def answered() -> bool:
        request = pb.ModelInferRequest(model_name="sklearn-iris")
        request.inputs.add(name="input-0", datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.array([[6.8, 2.8, 4.8, 1.4]], dtype="<f4").tobytes())
        route = [("x-modelplane-route", "/serving/default/sklearn-iris")]
        with grpc.insecure_channel(f"127.0.0.1:{iris_platform.grpc_port}") as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10, metadata=route)
        return len(reply.raw_output_contents) == 1

    _hostile_http2(iris_platform.grpc_port, answered, 40)


def _hostile_http2(port: int, answered: Callable[[], bool], max_connections: int) -> None:
    """The attacks on a gRPC port served by modelplane's HTTP/2 (--header-timeout 1, --max-connections given)."""
    import hpack

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)[:3] + b"\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS

    def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
        return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + sid.to_bytes(4, "big") + payload

    def attack(data: bytes) -> list[tuple[int, int, int, bytes]]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            return _h2_frames(sock)

    assert answered()
    # HTTP/1.1 on the gRPC port: GOAWAY(PROTOCOL_ERROR), closed
    assert _goaway_code(attack(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")) == 1
    # a header block that never ends (CVE-2024-27316's CONTINUATION flood): cut off at the header limit
    flood = frame(1, 0, 1, b"\x00") + frame(9, 0, 1, b"\x00" * 16_000) * 8
    assert _goaway_code(attack(preface + flood)) == 0xB
    # a frame announcing 16 MiB: refused from its 9-byte header
    assert _goaway_code(attack(preface + (16_777_215).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01")) == 6
    # rapid reset (CVE-2023-44487): 2,000 calls opened and cancelled at once. Each still counts until its
    # handler ends, so past the stream limit calls are refused (REFUSED_STREAM), and others are still answered
    encoder = hpack.Encoder()
    head = [(":method", "POST"), (":scheme", "http"), (":path", "/inference.GRPCInferenceService/ModelInfer")]
    head += [(":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")]
    body = pb.ModelInferRequest(model_name="model").SerializeToString()
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    burst = b"".join(
        frame(1, 4, sid, encoder.encode(head)) + frame(0, 1, sid, message) + frame(3, 0, sid, b"\0\0\0\x08")
        for sid in range(1, 4001, 2)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preface + burst)
        assert answered()
        sock.sendall(frame(7, 0, 0, bytes(8)))  # our GOAWAY: the server closes once its calls are done
        frames = _h2_frames(sock)
    refused = [sid for t, _, sid, p in frames if t == 3 and p == b"\0\0\0\x07"]
    assert len(refused) > 1000 and all(sid > 200 for sid in refused)
    # a connection that never opens a call is closed after the header timeout
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(preface)
        frames = _h2_frames(sock)
    assert _goaway_code(frames) == 0
    # past --max-connections, a new connection is sent away at once
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(max_connections)]
    try:
        assert _goaway_code(attack(preface)) == 0xB
    finally:
        for sock in idle:
            sock.close()
    assert answered()
