"""Kubernetes backend: the operator's view of the cluster — every watched object by kind, kept current by the
watch events, the one owner of that state. It is the controller's `Objects` store: reads are in memory; what
the controller writes (revisions, statuses) is queued here and written out by the backend's commit."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.backends.kubernetes.render.meta import ISVC_LABEL
from modelplane.control.api import ISVC_API, RUNTIME_API
from modelplane.control.revision import Revision

KINDS = {  # the controller's kind names -> apiVersion
    "InferenceService": ISVC_API,
    "ServingRuntime": RUNTIME_API,
    "ClusterServingRuntime": RUNTIME_API,
    "TrainedModel": RUNTIME_API,
}
REVISION_API = "apps/v1"
COMPONENT_LABEL = "component"
HASH_ANNOTATION = "modelplane.io/template-hash"
REVISIONS = "apps/ControllerRevision"

Key = tuple[str, str]  # (namespace, name); cluster-scoped objects have namespace ""


def kind_key(api: str, kind: str) -> str:
    group = api.rpartition("/")[0]
    return f"{group}/{kind}"


@dataclass
class PendingRevision:
    namespace: str
    isvc: str
    component: str
    revision: Revision
    body: dict[str, Any]


@dataclass
class Cache:
    objects: dict[str, dict[Key, dict[str, Any]]] = field(default_factory=dict)  # kind key -> key -> body
    statuses: dict[Key, dict[str, Any]] = field(default_factory=dict)  # isvc -> status to write
    new_revisions: list[PendingRevision] = field(default_factory=list)
    # the backend's additions to a status before it is compared with the cluster's (addresses it alone knows)
    decorate: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = lambda doc, status: status

    # labelled objects by the InferenceService they were rendered for: (namespace, isvc) -> {(kind key, name)}
    labelled: dict[Key, set[tuple[str, str]]] = field(default_factory=dict)

    # --- fed by the watch ------------------------------------------------------------------------------------
    def seen(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        kk = kind_key(body.get("apiVersion", ""), body.get("kind", ""))
        key = (meta.get("namespace") or "", meta.get("name", ""))
        old = self.objects.setdefault(kk, {}).get(key)
        if old is not None:
            self._unlabel(kk, key, old)
        self.objects[kk][key] = body
        owner = (meta.get("labels") or {}).get(ISVC_LABEL)
        if owner and not kk.endswith("/InferenceService"):
            self.labelled.setdefault((key[0], owner), set()).add((kk, key[1]))

    def gone(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        kk = kind_key(body.get("apiVersion", ""), body.get("kind", ""))
        key = (meta.get("namespace") or "", meta.get("name", ""))
        old = self.objects.get(kk, {}).pop(key, None)
        if old is not None:
            self._unlabel(kk, key, old)

    def _unlabel(self, kk: str, key: Key, body: dict[str, Any]) -> None:
        owner = ((body.get("metadata") or {}).get("labels") or {}).get(ISVC_LABEL)
        if owner:
            names = self.labelled.get((key[0], owner))
            if names is not None:
                names.discard((kk, key[1]))
                if not names:
                    del self.labelled[(key[0], owner)]

    def get(self, api: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind_key(api, kind), {}).get((namespace, name))

    def children(self, namespace: str, isvc: str) -> list[dict[str, Any]]:
        """Every cached object in the namespace labelled as rendered for the InferenceService (an index: O(its
        objects), not O(the cluster's))."""
        owned = sorted(self.labelled.get((namespace, isvc), ()))
        return [self.objects[kk][(namespace, name)] for kk, name in owned if kk != REVISIONS]

    # --- the controller's Objects store ---------------------------------------------------------------------
    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        by_key = self.objects.get(kind_key(KINDS[kind], kind), {})
        return [b for (ns, _), b in sorted(by_key.items()) if namespace is None or ns == namespace]

    def revisions(self, namespace: str, isvc: str, component: str) -> list[Revision]:
        out = []
        for kk, name in self.labelled.get((namespace, isvc), ()):
            body = self.objects[kk][(namespace, name)]
            if kk == REVISIONS and ((body.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL) == component:
                out.append(_revision(body))
        return sorted(out, key=lambda r: r.number)

    def add_revision(
        self, namespace: str, isvc: str, component: str, template_hash: str, template: dict[str, Any]
    ) -> Revision:
        number = max((r.number for r in self.revisions(namespace, isvc, component)), default=0) + 1
        name = f"{isvc}-{component}-{number:05d}"
        body = {
            "apiVersion": REVISION_API,
            "kind": "ControllerRevision",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {ISVC_LABEL: isvc, COMPONENT_LABEL: component},
                "annotations": {HASH_ANNOTATION: template_hash},
            },
            "revision": number,
            "data": template,
        }
        self.seen(body)  # the controller reads it back at once; the backend's commit creates it
        revision = _revision(body)
        self.new_revisions.append(PendingRevision(namespace, isvc, component, revision, body))
        return revision

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = self.objects.get(kind_key(KINDS[kind], kind), {}).get((namespace, name))
        if body is None:
            return
        status = self.decorate(body, status)
        if _canonical(body.get("status") or {}) != _canonical(status):
            self.statuses[(namespace, name)] = status


def _revision(body: dict[str, Any]) -> Revision:
    meta = body["metadata"]
    labels = meta.get("labels") or {}
    return Revision(
        namespace=meta.get("namespace", ""),
        isvc=labels.get(ISVC_LABEL, ""),
        component=labels.get(COMPONENT_LABEL, ""),
        number=int(body.get("revision", 0)),
        name=meta["name"],
        template_hash=(meta.get("annotations") or {}).get(HASH_ANNOTATION, ""),
        template=body.get("data") or {},
        created=meta.get("creationTimestamp") or "",
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
