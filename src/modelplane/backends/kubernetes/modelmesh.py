"""Kubernetes backend: ModelMesh InferenceServices on a cluster — the operator's ModelHost. A runtime's shared
deployment is rendered from its derived InferenceService and owned by every InferenceService it serves (the garbage
collector removes it with the last one). Its model list (the ConfigMap its puller follows) names each model by its
vmodel, the InferenceService's name, with the current spec: on a spec change the puller swaps the files in and the
server reloads the model in place, the old weights answering until the new ones are loaded. The operator sees no
pod's cache: a listed model counts one copy per available replica (each pod's puller loads every listed model), so
the vmodel's status moves to a new model as soon as it is listed."""

from __future__ import annotations

from typing import Any

from modelplane.backends.kubernetes.cache import Cache, Key
from modelplane.control.api import ISVC_API
from modelplane.control.modelmesh import ModelObserved

GRPC_PORT = 8081


def vmodel(model: str) -> str:
    """The InferenceService a concrete model id belongs to (`{isvc}__isvc-{hash}`)."""
    return model.split("__isvc-", 1)[0]


class ClusterModels:
    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.hosted: dict[Key, dict[str, str | None]] = {}  # shared deployment -> concrete id -> storageUri

    def host(self, namespace: str, isvc: str, models: dict[str, str | None]) -> None:
        if models:
            self.hosted[(namespace, isvc)] = dict(models)
        else:
            self.hosted.pop((namespace, isvc), None)

    def load(self, namespace: str, isvc: str, model: str, copies: int) -> None:
        """Nothing to do: every pod's puller loads every listed model."""

    def urls(self, namespace: str, isvc: str, vmodel: str) -> dict[str, str]:
        host = f"{isvc}-predictor.{namespace}.svc.cluster.local"  # the shared deployment's Service
        return {"url": f"http://{host}", "restUrl": f"http://{host}", "grpcUrl": f"grpc://{host}:{GRPC_PORT}"}

    def models(self, key: Key) -> list[dict[str, Any]]:
        """The shared deployment's model list, as the puller reads it: each vmodel with its current storageUri."""
        entries = {
            vmodel(model): {"modelName": vmodel(model), "modelSpec": {"storageUri": uri}}
            for model, uri in self.hosted.get(key, {}).items()
            if uri is not None
        }
        return [entries[name] for name in sorted(entries)]

    def owners(self, key: Key) -> list[dict[str, Any]]:
        """Owner references to every InferenceService the shared deployment serves (none is its controller)."""
        refs = []
        for name in sorted({vmodel(m) for m in self.hosted.get(key, {})}):
            doc = self.cache.get(ISVC_API, "InferenceService", key[0], name)
            uid = (doc or {}).get("metadata", {}).get("uid")
            if uid:
                refs.append(
                    {"apiVersion": ISVC_API, "kind": "InferenceService", "name": name, "uid": uid,
                     "blockOwnerDeletion": True}
                )  # fmt: skip
        return refs

    def seen(self, namespace: str, isvc: str, model: str) -> ModelObserved:
        """Registered once listed (the operator writes the list in the same pass); a copy per available replica of
        the shared deployment."""
        if model not in self.hosted.get((namespace, isvc), {}):
            return ModelObserved()
        deployment = self.cache.get("apps/v1", "Deployment", namespace, f"{isvc}-predictor") or {}
        available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
        return ModelObserved(pulled=True, copies=available)
