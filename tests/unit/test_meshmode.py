"""The controller's ModelMesh pass through a fake backend and a fake ModelHost: InferenceServices of one runtime share
one derived deployment whose revisions are kept, each route names its vmodel's model, the vmodel moves only when
the host says the new model has the copies, loads are asked for as ModelMesh would, refusals reach the status, and a
runtime's deployment goes with its last InferenceService."""

from __future__ import annotations

from typing import Any

import pytest
from support.fake_backend import FakeBackend, passes

from modelplane.backends.controller import Controller
from modelplane.backends.local.store import Store
from modelplane.control.modelmesh import ModelObserved

SHARED = "modelmesh-serving-mlserver-1-x"


class FakeHost:
    def __init__(self) -> None:
        self.hosted: dict[tuple[str, str], dict[str, str | None]] = {}
        self.models: dict[str, ModelObserved] = {}
        self.loads: list[tuple[str, int]] = []

    def host(self, namespace: str, isvc: str, models: dict[str, str | None]) -> None:
        if models:
            self.hosted[(namespace, isvc)] = dict(models)
        else:
            self.hosted.pop((namespace, isvc), None)

    def seen(self, namespace: str, isvc: str, model: str) -> ModelObserved:
        return self.models.get(model, ModelObserved())

    def load(self, namespace: str, isvc: str, model: str, copies: int) -> None:
        if copies:
            self.loads.append((model, copies))

    def urls(self, namespace: str, isvc: str, vmodel: str) -> dict[str, str]:
        return {"url": f"http://{isvc}/{vmodel}", "restUrl": f"http://{isvc}/{vmodel}"}


def mesh_isvc(name: str, uri: str, fmt: str = "sklearn") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"serving.kserve.io/deploymentMode": "ModelMesh"},
        },
        "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": uri}}},
    }


@pytest.fixture
def mesh(tmp_path):
    store = Store(tmp_path / "state.db")
    backend = FakeBackend()
    host = FakeHost()
    backend.models = host  # type: ignore[assignment]
    yield store, backend, host, Controller(store, backend, clock=lambda: "2026-11-30T00:00:00Z")
    store.close()


def model_id(store: Store, name: str) -> str:
    doc = store.get("InferenceService", "default", name) or {}
    return doc["status"]["components"]["predictor"]["activeModelId"]


def test_model_mesh_isvcs_share_one_deployment_and_route_by_vmodel(mesh) -> None:
    store, backend, host, controller = mesh
    store.put(mesh_isvc("a", "s3://m/a"))
    store.put(mesh_isvc("b", "s3://m/b"))
    passes(controller, 2)
    shared = [k for k in backend.running if k.startswith(f"default.{SHARED}-predictor-")]
    assert len(shared) == 1 and len(backend.running) == 1  # one deployment for both, none of their own
    a, b = model_id(store, "a"), model_id(store, "b")
    assert host.hosted[("default", SHARED)] == {a: "s3://m/a", b: "s3://m/b"}
    assert backend.routes[("default", "a")].aliases == {"a": a}
    assert backend.routes[("default", SHARED)].aliases == {"a": a, "b": b}
    assert backend.routes[("default", "a")].targets == backend.routes[("default", SHARED)].targets
    assert (a, 1) in host.loads and (b, 1) in host.loads  # loadNow for new models
    state = store.get("InferenceService", "default", "a")["status"]["modelStatus"]
    assert state["states"]["activeModelState"] == "Pending"  # nothing pulled yet

    host.models[a] = ModelObserved(pulled=True, copies=2)
    passes(controller, 1)
    assert store.get("InferenceService", "default", "a")["status"]["modelStatus"]["states"]["activeModelState"] == (
        "Loaded"
    )
    host.loads.clear()
    passes(controller, 2)
    assert not [m for m, _ in host.loads if m == a]  # seen Loaded: it loads on demand from now on


def test_a_spec_change_moves_the_vmodel_only_once_the_new_model_has_the_copies(mesh) -> None:
    store, backend, host, controller = mesh
    store.put(mesh_isvc("a", "s3://m/v1"))
    passes(controller, 2)
    old = model_id(store, "a")
    host.models[old] = ModelObserved(pulled=True, copies=2)
    passes(controller, 1)
    doc = store.get("InferenceService", "default", "a")
    doc["spec"]["predictor"]["model"]["storageUri"] = "s3://m/v2"
    store.put(doc)
    passes(controller, 1)
    [new] = [m for m in host.hosted[("default", SHARED)] if m != old]
    assert host.hosted[("default", SHARED)] == {new: "s3://m/v2", old: None}  # the old one kept as pulled
    assert backend.routes[("default", "a")].aliases == {"a": old}
    assert (new, 2) in host.loads  # as many copies as the old one has
    status = store.get("InferenceService", "default", "a")["status"]
    assert status["modelStatus"]["transitionStatus"] == "InProgress"
    assert status["components"]["predictor"]["targetModelId"] == new

    host.models[new] = ModelObserved(pulled=True, copies=1)
    passes(controller, 1)
    assert backend.routes[("default", "a")].aliases == {"a": old}  # one copy of two: not yet
    host.models[new] = ModelObserved(pulled=True, copies=2)
    passes(controller, 2)
    assert backend.routes[("default", "a")].aliases == {"a": new}
    assert host.hosted[("default", SHARED)] == {new: "s3://m/v2"}  # the old one goes
    assert store.get("InferenceService", "default", "a")["status"]["modelStatus"]["transitionStatus"] == "UpToDate"


def test_refusals_reach_the_status_and_the_last_isvc_takes_the_deployment_with_it(mesh) -> None:
    store, backend, host, controller = mesh
    store.put(mesh_isvc("p", "s3://m/p", fmt="pmml"))
    store.put(mesh_isvc("a", "s3://m/a"))
    passes(controller, 2)
    refused = store.get("InferenceService", "default", "p")["status"]
    assert refused["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    assert backend.routes[("default", "p")].targets == {}  # routed nowhere
    assert len(backend.running) == 1

    store.delete("InferenceService", "default", "a")
    passes(controller, 2)
    assert backend.running == {} and ("default", SHARED) not in backend.routes
    assert host.hosted == {}  # its models are removed
