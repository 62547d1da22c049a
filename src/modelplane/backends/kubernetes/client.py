"""Kubernetes backend: the writes the operator makes, behind a small contract — server-side apply, create, status
patch, delete — with lightkube (async, httpx-based, server-side apply built in) as the real implementation and an
in-memory double for unit tests. Reads come from the watch cache, never from here."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

FIELD_MANAGER = "modelplane"

# apiVersion/kind -> (plural, namespaced): everything the operator writes or watches
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): ("inferenceservices", True),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): ("servingruntimes", True),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): ("clusterservingruntimes", False),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("v1", "Service"): ("services", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaledobjects", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("httproutes", True),
    ("serving.knative.dev/v1", "Service"): ("services", True),
    ("networking.istio.io/v1beta1", "VirtualService"): ("virtualservices", True),
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Writer(Protocol):
    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    async def patch_status(self, api: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the object's status (the fields this manager set and no longer sets are removed)."""
        ...

    async def delete(self, api: str, kind: str, namespace: str, name: str) -> None: ...


@functools.cache
def generic(api: str, kind: str) -> Any:
    """lightkube's class for the resource: the one already registered (lightkube's typed model of a built-in
    kind, once anything loaded it), else a generic one that keeps the dict exactly as written."""
    from lightkube.core.resource_registry import resource_registry
    from lightkube.generic_resource import create_global_resource, create_namespaced_resource

    registered = resource_registry.get(api, kind)
    if registered is not None:
        return registered
    plural, namespaced = RESOURCES[(api, kind)]
    group, _, version = api.rpartition("/")
    make = create_namespaced_resource if namespaced else create_global_resource
    return make(group, version, kind, plural)


class LightkubeWriter:
    """Writes through lightkube's AsyncClient; every object as a generic resource, so what is applied is exactly
    the rendered dict (no typed model in between to drop or default a field)."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        from lightkube import AsyncClient, KubeConfig

        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        self.client = AsyncClient(config=config, field_manager=FIELD_MANAGER)

    async def _call(self, coro: Any) -> Any:
        from lightkube import ApiError as LightkubeError

        try:
            return await coro
        except LightkubeError as exc:
            raise ApiError(exc.status.code or 500, exc.status.message or str(exc)) from None

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = generic(obj["apiVersion"], obj["kind"]).from_dict(obj)
        out = await self._call(self.client.apply(res, force=True))
        return dict(out.to_dict())

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        res = generic(obj["apiVersion"], obj["kind"]).from_dict(obj)
        out = await self._call(self.client.create(res))
        return dict(out.to_dict())

    async def patch_status(self, api: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        from lightkube.types import PatchType

        # server-side apply on the status subresource: a field the last status had and this one lacks is removed
        # (a merge patch would keep it: a recovered object would go on showing its old lastFailureInfo)
        res = generic(api, kind).Status
        body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "status": status}
        await self._call(
            self.client.patch(res, name, body, namespace=namespace, patch_type=PatchType.APPLY, force=True)
        )

    async def delete(self, api: str, kind: str, namespace: str, name: str) -> None:
        try:
            await self._call(self.client.delete(generic(api, kind), name, namespace=namespace))
        except ApiError as exc:
            if exc.status != 404:
                raise


@dataclass
class MemoryWriter:
    """The in-memory double: records every write, keeps the objects, fails on request."""

    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, kind, name)
    fail: dict[str, ApiError] = field(default_factory=dict)  # object name -> error to raise

    def _check(self, name: str) -> None:
        if name in self.fail:
            raise self.fail[name]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """As server-side apply does: the fields sent replace ours; status and the generation stay the server's
        (the generation moves when the spec changes)."""
        meta = obj["metadata"]
        self.log.append(("apply", obj["kind"], meta["name"]))
        self._check(meta["name"])
        key = (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
        old = self.objects.get(key, {})
        generation = (old.get("metadata") or {}).get("generation", 0)
        if old.get("spec") != obj.get("spec"):
            generation += 1
        new = copy.deepcopy(obj)
        new["metadata"]["generation"] = generation
        if "status" in old:
            new["status"] = old["status"]
        self.objects[key] = new
        return copy.deepcopy(new)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.log.append(("create", obj["kind"], meta["name"]))
        self._check(meta["name"])
        key = (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
        if key in self.objects:
            raise ApiError(409, f"{obj['kind']} {meta['name']} already exists")
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def patch_status(self, api: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.log.append(("status", kind, name))
        self._check(name)
        self.objects.setdefault((api, kind, namespace, name), {})["status"] = status

    async def delete(self, api: str, kind: str, namespace: str, name: str) -> None:
        self.log.append(("delete", kind, name))
        self.objects.pop((api, kind, namespace, name), None)
