"""The control-plane API refuses what a browser page, a DNS-rebinding attacker or a careless client sends: no token,
a wrong or rotated token, an Origin header, a form content type, a foreign Host; and it answers malformed objects
and parameters with a 4xx Status instead of a 500 or a silent acceptance."""

from __future__ import annotations

import json
import os
import stat

import orjson
import pytest
from support.asgi import call

from modelplane.backends.local.apiserver import ApiServer
from modelplane.backends.local.auth import ApiGuard, TokenFile, ensure_token, rotate_token
from modelplane.backends.local.store import Store

BASE = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"


def isvc(name: str = "iris", **predictor) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "/m"}, **predictor}},
    }


@pytest.fixture
def api(tmp_path):
    token = ensure_token(tmp_path)
    store = Store(tmp_path / "state.db")
    server = ApiServer(
        store, guard=ApiGuard(TokenFile(tmp_path), frozenset({"mp.internal"})), max_scale_limit=lambda: 10
    )
    yield server, token, tmp_path
    store.close()


def send(api, method, path=BASE, body=None, token=None, query=b"", **headers):
    server, good, _ = api
    h = {"host": "127.0.0.1:8090", "content-type": "application/json", **headers}
    if token is not False:
        h["authorization"] = f"Bearer {token or good}"
    raw = body if isinstance(body, bytes) else orjson.dumps(body) if body is not None else b""
    status, _, out = call(server, method, path, h, raw, query)
    return status, json.loads(out) if out else None


def test_token_file_is_private_and_kept(tmp_path):
    token = ensure_token(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600
    assert ensure_token(tmp_path) == token
    os.chmod(tmp_path / "token", 0o644)
    assert ensure_token(tmp_path) == token and stat.S_IMODE(os.stat(tmp_path / "token").st_mode) == 0o600


@pytest.mark.parametrize(
    ("token", "headers", "code"),
    [
        (False, {}, 401),  # no token
        ("not-the-token", {}, 401),
        (None, {"origin": "http://evil.example"}, 403),  # a browser page, even with a token it cannot have
        (None, {"origin": "null"}, 403),
        (None, {"host": "evil.example:8090"}, 421),  # DNS rebinding: the page's own name resolves to 127.0.0.1
        (None, {"content-type": "text/plain"}, 415),  # the "simple request" a form or fetch() sends without CORS
        (None, {"content-type": "application/x-www-form-urlencoded"}, 415),
        (None, {"content-type": "multipart/form-data; boundary=x"}, 415),
    ],
)
def test_browser_and_unauthenticated_requests_create_nothing(api, token, headers, code):
    doc = isvc(command=["sh", "-c", "touch /tmp/pwned"])
    status, body = send(api, "POST", body=doc, token=token, **headers)
    assert status == code and body["kind"] == "Status"
    assert api[0].store.list("InferenceService") == []


def test_every_call_needs_the_token_but_healthz(api):
    assert send(api, "GET", token=False)[0] == 401
    assert send(api, "GET", "/metrics", token=False)[0] == 401
    assert send(api, "GET", "/healthz", token=False)[0] == 200
    assert send(api, "GET")[0] == 200


def test_allowed_hosts_and_yaml_bodies(api):
    status, body = send(api, "POST", body=isvc(), host="mp.internal")
    assert status == 201, body
    yaml_doc = json.dumps(isvc("other")).encode()  # JSON is YAML
    assert send(api, "POST", body=yaml_doc, **{"content-type": "application/yaml"})[0] == 201


def test_rotation_takes_effect_at_once(api):
    _, old, home = api
    assert send(api, "GET")[0] == 200
    new = rotate_token(home)
    assert send(api, "GET", token=old)[0] == 401
    assert send(api, "GET", token=new)[0] == 200
    assert stat.S_IMODE(os.stat(home / "token").st_mode) == 0o600


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        (b"watch=true&resourceVersion=abc", "resourceVersion"),
        (b"watch=maybe", "watch"),
        (b"apply=yes", "apply"),
        (b"fieldSelector=x", "unknown query parameter"),
    ],
)
def test_bad_query_parameters_are_400(api, query, fragment):
    status, body = send(api, "GET", query=query)
    assert status == 400 and fragment in body["message"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(metadata="iris"), "metadata must be an object"),
        (lambda d: d["metadata"].update(name=["x"]), "metadata.name"),
        (lambda d: d["metadata"].update(annotations={"a": 1}), "metadata.annotations"),
        (lambda d: d.update(kind="ServingRuntime"), "does not match"),
        (lambda d: d["metadata"].update(namespace="team-b"), "does not match the URL"),
        (lambda d: d["metadata"].update(uid="1234"), "metadata.uid"),
        (lambda d: d["metadata"].update(creationTimestamp="2020-01-01T00:00:00Z"), "creationTimestamp"),
        (lambda d: d.update(status={"conditions": [{"type": "Ready", "status": "True"}]}), "status"),
    ],
)
def test_malformed_or_server_owned_fields_are_400(api, mutate, fragment):
    doc = isvc()
    mutate(doc)
    status, body = send(api, "POST", body=doc)
    assert status == 400 and fragment in body["message"], body
    assert api[0].store.list("InferenceService") == []


@pytest.mark.parametrize(
    ("predictor", "fragment"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"maxReplicas": 11}, "max-scale-limit of 10"),
        ({"minReplicas": 50, "maxReplicas": 0}, "max-scale-limit"),
    ],
)
def test_nonsense_values_are_422(api, predictor, fragment):
    status, body = send(api, "POST", body=isvc(**predictor))
    assert status == 422 and fragment in body["message"], body


def test_bodies_that_are_not_one_object(api):
    for raw in (b"{not json", b"[]", b'"x"', b"[" * 5000, b"\xff\xfe"):
        status, body = send(api, "POST", body=raw)
        assert status == 400 and body["kind"] == "Status"
    status, body = send(api, "POST", body=b"a: [" * 3, **{"content-type": "application/yaml"})
    assert status == 400


def test_the_platforms_listening_sockets_turn_nagle_off() -> None:
    """asyncio disables Nagle only on sockets whose proto says TCP; the platform binds its own (to report a taken
    port before it says it is up), and with proto 0 every keep-alive response through the gateway waited ~40 ms
    for the client's delayed ACK. Accepted connections inherit these options."""
    import socket

    from modelplane.backends.local.platform import _bind

    sock = _bind("127.0.0.1", 0, "gateway HTTP", "--port")
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()
