"""The controller loop driven through a fake backend (the seam a Kubernetes backend implements too): revisions,
routes before scaling, rollouts, isolation of a broken object, retirement — no processes, no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.fake_backend import FakeBackend, passes

from modelplane.backends.controller import Controller
from modelplane.backends.local.store import Store


def isvc(name: str, uri: str = "file:///models/iris", **predictor: Any) -> dict[str, Any]:
    model = {"modelFormat": {"name": "sklearn"}, "storageUri": uri}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"predictor": {"model": model, **predictor}},
    }


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "state.db")
    backend = FakeBackend()
    yield store, backend, Controller(store, backend, clock=lambda: "2026-11-30T00:00:00Z")
    store.close()


def status(store: Store, name: str) -> dict[str, Any]:
    return (store.get("InferenceService", "default", name) or {}).get("status") or {}


def ready(store: Store, name: str) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status(store, name).get("conditions", []))


def test_a_new_isvc_gets_a_revision_a_route_to_it_once_ready_and_a_ready_status(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 1)
    [key] = backend.known
    assert backend.planned[key] is True and backend.running[key] == 1
    assert not ready(store, "iris")  # observed before it was applied: not ready yet, no traffic named
    passes(controller, 1)
    assert ready(store, "iris")
    assert backend.routes[("default", "iris")].targets == {"predictor": [(key, 100)]}
    assert status(store, "iris")["components"]["predictor"]["autoscaling"] == [
        {"revisionName": "iris-predictor-00001", "replicas": 1}  # reported after the replicas changed
    ]


def test_the_route_is_set_before_replicas_change(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 2)
    backend.calls.clear()
    store.put(isvc("iris", uri="file:///models/iris-v2"))  # a new template: a second revision
    passes(controller, 1)
    kinds = [kind for kind, _ in backend.calls if kind in ("route", "apply")]
    assert kinds[0] == "route" and "apply" in kinds  # traffic moves first, processes after


def test_a_rollout_moves_traffic_only_when_the_new_revision_is_ready(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 2)
    [old] = backend.known
    store.put(isvc("iris", uri="file:///models/iris-v2"))
    new = None
    for _ in range(2):
        passes(controller, 1)
        new = next(k for k in backend.known if k != old)
        backend.hold.add(new)  # its model never arrives
    assert backend.routes[("default", "iris")].targets == {"predictor": [(old, 100)]}
    assert backend.planned[old] is True  # the old revision keeps serving meanwhile
    backend.hold.discard(new)
    passes(controller, 3)
    assert backend.routes[("default", "iris")].targets == {"predictor": [(new, 100)]}
    assert backend.planned[old] is False and backend.running[old] == 0  # kept as a revision, scaled to zero


def test_a_canary_splits_traffic_by_percent(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 2)
    [old] = backend.known
    store.put(isvc("iris", uri="file:///models/iris-v2", canaryTrafficPercent=10))
    passes(controller, 3)
    new = next(k for k in backend.known if k != old)
    assert backend.routes[("default", "iris")].targets == {"predictor": [(new, 10), (old, 90)]}


def test_one_isvc_the_backend_cannot_handle_is_reported_on_itself_and_the_others_carry_on(world) -> None:
    store, backend, controller = world
    store.put(isvc("good"))
    store.put(isvc("bad"))
    backend.broken_observe.add("bad")
    passes(controller, 2)
    assert ready(store, "good")
    [condition] = [c for c in status(store, "bad")["conditions"] if c["type"] == "Ready"]
    assert condition["reason"] == "ReconcileFailed" and "backend cannot read this one" in condition["message"]


def test_a_failure_the_backend_observes_reaches_the_status(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 1)
    [key] = backend.known
    backend.hold.add(key)
    backend.failures[key] = "NotFound: gs://bucket/model does not exist"
    passes(controller, 1)
    info = status(store, "iris")["modelStatus"]["lastFailureInfo"]
    assert "gs://bucket/model does not exist" in info["message"]


def test_deleting_an_isvc_removes_its_route_and_retires_its_revisions(world) -> None:
    store, backend, controller = world
    store.put(isvc("iris"))
    passes(controller, 2)
    [key] = backend.known
    store.delete("InferenceService", "default", "iris")
    backend.calls.clear()
    passes(controller, 1)
    assert ("default", "iris") not in backend.routes and key not in backend.running
    assert backend.calls.index(("route", "iris")) < backend.calls.index(("retire", key))


def test_reconciling_one_isvc_touches_only_it_and_commits(world) -> None:
    """The event-driven entry point (the Kubernetes operator's): one InferenceService per call, the pass committed;
    a deleted one loses its route."""
    store, backend, controller = world
    store.put(isvc("iris"))
    store.put(isvc("other"))

    async def one(name: str) -> None:
        await controller.reconcile("default", name)

    asyncio.run(one("iris"))
    assert {r.name for r in backend.known.values()} == {"iris-predictor-00001"}
    assert backend.calls[0] == ("sync", "") and backend.calls[-1] == ("commit", "")
    asyncio.run(one("iris"))
    assert ready(store, "iris") and status(store, "other") == {}
    store.delete("InferenceService", "default", "iris")
    asyncio.run(one("iris"))
    assert ("default", "iris") not in backend.routes
