"""Backends: the seam between the controller and whatever runs revisions — the small contract each backend
implements (the local backend: processes behind the embedded gateway; a Kubernetes backend: cluster objects) and
the controller drives. A fake in the unit tests drives the controller without processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from modelplane.control.api import InferenceService
from modelplane.control.modelmesh import ModelObserved
from modelplane.control.reconciler import Observed
from modelplane.control.revision import Revision

REPOSITORY_ANNOTATION = "modelplane.io/repository-api"  # "true": the V2 repository load/unload API is exposed
PREFIX_ROUTING_ANNOTATION = "modelplane.io/prefix-routing"  # "false": LLM requests are not routed by prompt prefix
MODEL_ROUTING_ANNOTATION = "modelplane.io/model-routing"  # "true": many models per replica, routed by model name


class Objects(Protocol):
    """The object store the controller reads and writes (the local backend's SQLite store; a cluster's API
    server)."""

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]: ...
    def revisions(self, namespace: str, isvc: str, component: str) -> list[Revision]: ...
    def add_revision(
        self, namespace: str, isvc: str, component: str, template_hash: str, template: dict[str, Any]
    ) -> Revision: ...
    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Traffic:
    """Where one InferenceService's requests go, as the reconciler decided; revisions are named by Revision.key."""

    targets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # component -> (revision, percent)
    tags: dict[str, str] = field(default_factory=dict)  # "latest"/"prev" -> revision (tag routing)
    timeouts: dict[str, float] = field(default_factory=dict)  # component -> seconds (the component's `timeout`)
    repository_api: bool = False  # the isvc exposes V2 repository load/unload
    prefix_routing: bool = True  # generation requests sharing a prompt prefix prefer one replica
    model_routing: bool = False  # requests go to a replica holding their model, placed by ModelMesh's rules
    aliases: dict[str, str] = field(default_factory=dict)  # vmodel -> the concrete model its requests go to
    # component -> the reconciler's targets as KServe writes them (revisionName, percent, tag, latestRevision):
    # what a Knative Service's traffic block is made of
    blocks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class Reconciled(NamedTuple):
    """What one InferenceService's reconcile decided."""

    revisions: set[str]  # the revision keys it keeps
    traffic: Traffic  # what its route was set to
    status: dict[str, Any]


class ModelHost(Protocol):
    """Models kept in a multi-model InferenceService's repository for the controller (ModelMesh mode): pulled,
    loaded on request, watched. Called on the event loop; never blocks."""

    def host(self, namespace: str, isvc: str, models: dict[str, str]) -> None:
        """The models (concrete id -> storageUri) the isvc's replicas serve from now on; others are removed."""

    def seen(self, namespace: str, isvc: str, model: str) -> ModelObserved:
        """The model as it is now: pulled, copies loaded, loading, load failures."""
        ...

    def load(self, namespace: str, isvc: str, model: str, copies: int) -> None:
        """Have `copies` replicas load the model now (ModelMesh's loadNow), not waiting for a request."""

    def urls(self, namespace: str, isvc: str, vmodel: str) -> dict[str, str]:
        """Where a vmodel of the isvc's deployment is reached (`url`, `restUrl`, and `grpcUrl` when known)."""
        ...


class Backend(Protocol):
    """Called on the controller's event loop; no method may block (slow work runs in the backend's own tasks and
    threads, whose outcome shows in `observe`)."""

    gateway_url: str  # where the InferenceServices' URLs point
    domain: str  # the host suffix of {name}.{namespace}.{domain}
    models: ModelHost | None  # hosts ModelMesh InferenceServices' models (None: the backend does not)

    async def sync(self) -> None:
        """Once per pass, before any InferenceService: refresh what the backend observes (probes, crashes)."""

    def observe(self, isvc: InferenceService, component: str, revision: Revision) -> Observed:
        """The revision as it runs now; the first call makes the backend start preparing it (e.g. its model pull)."""
        ...

    def plan(self, key: str, run: bool) -> None:
        """Whether the reconciler wants the revision running; the backend decides how many replicas (its
        autoscaler)."""

    def route(self, namespace: str, name: str, traffic: Traffic | None) -> None:
        """Send the InferenceService's traffic there (None: it is gone). Called before `apply`, so a revision leaves
        the route before its replicas stop."""

    def apply(self, key: str) -> None:
        """Make the revision's replicas match its plan (start or stop them)."""

    def report(self, key: str) -> dict[str, Any] | None:
        """The revision's autoscaling state for the status (after `apply`), if it has an autoscaler."""
        ...

    def retire(self, live: set[str]) -> None:
        """Stop and forget every revision whose key is not in `live`."""

    async def commit(self) -> None:
        """After a pass: write out what it decided, where writing is I/O (a cluster's objects); nothing to do for a
        backend whose decisions took effect in the calls above."""

    def owned(self, namespace: str, name: str) -> set[str]:
        """The revisions the backend runs for an InferenceService (kept as they are while it cannot be
        reconciled)."""
        ...
