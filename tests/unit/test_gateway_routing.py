"""Gateway routing decisions (host and path forms, components, tags, weighted split) without sockets."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.gateway import Gateway, Route

READY = {"r1": ["http://a"], "r2": ["http://b"], "t1": ["http://t"], "e1": ["http://e"], "down": []}


class StaticReplicas:
    """The in-memory double of the replica set: fixed ready endpoints, nothing starting."""

    def ready(self, revision: str) -> list[Endpoint]:
        return [Endpoint(url, "") for url in READY.get(revision, [])]

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        return []

    def mark_ready(self, revision: str, endpoint: Endpoint) -> None:
        raise AssertionError("nothing starts here")


def gateway() -> Gateway:
    g = Gateway(StaticReplicas(), domain="example.com")
    g.random = random.Random(7)
    g.set_route(
        "default", "iris", Route(traffic={"predictor": [("r2", 10), ("r1", 90)]}, tags={"latest": "r2", "prev": "r1"})
    )
    g.set_route(
        "ns",
        "full",
        Route(traffic={"predictor": [("r1", 100)], "transformer": [("t1", 100)], "explainer": [("e1", 100)]}),
    )
    return g


def test_host_and_path_forms_resolve_to_the_same_route():
    g = gateway()
    route, component, tag, path = g.resolve("iris.default.example.com:8080", "/v1/models/iris:predict")
    assert (component, tag, path) == (None, None, "/v1/models/iris:predict")
    same, _, _, upstream = g.resolve("127.0.0.1:8080", "/serving/default/iris/v1/models/iris:predict")
    assert same is route and upstream == "/v1/models/iris:predict"
    with pytest.raises(LookupError):
        g.resolve("other.default.example.com", "/")
    with pytest.raises(LookupError):
        g.resolve("localhost", "/v1/models/iris:predict")


def test_components_explain_transformer_and_explicit_hosts():
    g = gateway()
    route, component, _, path = g.resolve("full.ns.example.com", "/v1/models/full:explain")
    assert g.component_for(route, component, path) == "explainer"
    assert g.component_for(route, None, "/v1/models/full:predict") == "transformer"
    route, component, _, _ = g.resolve("full-predictor.ns.example.com", "/v1/models/full:predict")
    assert component == "predictor"  # the transformer reaches the predictor this way


def test_tags_pin_a_revision_and_the_split_follows_the_weights():
    g = gateway()
    route, component, tag, _ = g.resolve("latest-iris-predictor.default.example.com", "/")
    assert (component, tag) == ("predictor", "latest") and g.pick(route, "predictor", tag) == "r2"
    seen = Counter(g.pick(route, "predictor", None) for _ in range(5000))
    assert 0.08 < seen["r2"] / 5000 < 0.12


def test_targets_without_ready_replicas_get_nothing_and_none_at_all_is_an_error():
    g = gateway()
    g.set_route("default", "half", Route(traffic={"predictor": [("down", 50), ("r1", 50)]}))
    route, _, _, _ = g.resolve("half.default.example.com", "/")
    assert {g.pick(route, "predictor", None) for _ in range(100)} == {"r1"}
    g.set_route("default", "dead", Route(traffic={"predictor": [("down", 100)]}))
    route, _, _, _ = g.resolve("dead.default.example.com", "/")
    with pytest.raises(ConnectionError):
        g.pick(route, "predictor", None)


def test_a_revision_at_zero_keeps_its_share_of_the_split():
    g = gateway()
    g.set_route(
        "default", "cold", Route(traffic={"predictor": [("down", 50), ("r1", 50)]}, activatable=frozenset({"down"}))
    )
    route, _, _, _ = g.resolve("cold.default.example.com", "/")
    seen = Counter(g.pick(route, "predictor", None) for _ in range(2000))
    assert 0.4 < seen["down"] / 2000 < 0.6  # its requests wait for the activator instead of moving to r1


async def _asgi(g: Gateway, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"host", b"x")], "query_string": b""}
    await g(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_held_requests_time_out_with_504_and_a_full_queue_answers_503_with_retry_after():
    import asyncio

    asked: list[tuple[str, int]] = []
    g = Gateway(StaticReplicas(), activate=lambda rev, held: asked.append((rev, held)), queue_depth=1)
    g.set_route(
        "default",
        "cold",
        Route(traffic={"predictor": [("down", 100)]}, activatable=frozenset({"down"}), timeouts={"predictor": 0.3}),
    )

    async def main() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        first = asyncio.create_task(_asgi(g, "/serving/default/cold/v1/models/cold:predict"))
        await asyncio.sleep(0.05)  # the first request is held (no replica will ever be ready here)
        second = await _asgi(g, "/serving/default/cold/v1/models/cold:predict")
        return [await first, second]

    (held_status, _, held_body), (full_status, full_headers, full_body) = asyncio.run(main())
    assert held_status == 504 and b"had no ready replica within its 0.3s timeout" in held_body
    assert full_status == 503 and full_headers[b"retry-after"] == b"1" and b"too many requests waiting" in full_body
    assert asked and asked[0] == ("down", 1)  # the activator asked for a scale-from-zero
