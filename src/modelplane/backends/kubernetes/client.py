"""Kubernetes backend: the writes the operator makes, behind a small contract — server-side apply, create, status
patch, delete — with aiohttp on the API server's REST paths as the real implementation (lightkube reads the
kubeconfig) and an in-memory double for unit tests. Reads come from the watch cache, never from here."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

FIELD_MANAGER = "modelplane"
APPLY = "application/apply-patch+yaml"  # server-side apply (JSON is YAML)

# apiVersion/kind -> (plural, namespaced): everything the operator writes or watches
RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): ("inferenceservices", True),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): ("servingruntimes", True),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): ("clusterservingruntimes", False),
    ("serving.kserve.io/v1alpha1", "TrainedModel"): ("trainedmodels", True),
    ("apps/v1", "ControllerRevision"): ("controllerrevisions", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ConfigMap"): ("configmaps", True),
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


class HttpWriter:
    """Writes with aiohttp — kopf's own HTTP client — straight to the API server's REST paths; lightkube reads the
    kubeconfig (the TLS context with the CA and any client certificate, and the credentials: token, token file,
    exec plugin, basic). Measured against lightkube's httpx client on the test API server, the same server-side
    applies cost 0.3-0.7 ms of CPU each instead of 1.4-1.7 ms, and the operator's CPU under load was half HTTP."""

    def __init__(self, kubeconfig: str | None = None, connections: int = 100) -> None:
        from lightkube import KubeConfig
        from lightkube.config.client_adapter import user_auth, verify_cluster

        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = config.get()
        self._base = single.cluster.server.rstrip("/")
        self._tls = verify_cluster(single.cluster, single.user, single.abs_file)
        self._auth = user_auth(single.user)
        self._connections = connections
        self._session: Any = None  # made on the event loop, at the first write

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _path(self, api: str, kind: str, namespace: str, name: str | None = None) -> str:
        plural, namespaced = RESOURCES[(api, kind)]
        root = f"{self._base}/api/{api}" if "/" not in api else f"{self._base}/apis/{api}"
        where = f"{root}/namespaces/{namespace}/{plural}" if namespaced else f"{root}/{plural}"
        return f"{where}/{name}" if name else where

    async def _send(self, method: str, url: str, body: dict[str, Any] | None, content_type: str, **params: str) -> Any:
        """One request; with the kubeconfig's credentials, re-fetched once on a 401 (a rotated token file, an exec
        plugin's expired token), as the credentials' own flow asks."""
        import aiohttp
        import httpx2
        import orjson

        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=self._connections)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode()
            )
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        data = orjson.dumps(body) if body is not None else None
        flow = self._auth.async_auth_flow(httpx2.Request(method, url)) if self._auth is not None else None
        try:
            request = await flow.__anext__() if flow is not None else None
            while True:
                if request is not None and "Authorization" in request.headers:
                    headers["Authorization"] = request.headers["Authorization"]
                async with self._session.request(method, url, data=data, headers=headers, params=params) as resp:
                    status, raw = resp.status, await resp.read()
                if status != 401 or flow is None:
                    break
                try:
                    request = await flow.asend(httpx2.Response(401))
                except StopAsyncIteration:
                    break
        finally:
            if flow is not None:
                await flow.aclose()
        if status >= 400:
            try:
                message = orjson.loads(raw).get("message") or raw.decode(errors="replace")
            except orjson.JSONDecodeError:
                message = raw.decode(errors="replace")
            raise ApiError(status, message)
        return orjson.loads(raw) if raw else None

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        url = self._path(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
        out: dict[str, Any] = await self._send("PATCH", url, obj, APPLY, fieldManager=FIELD_MANAGER, force="true")
        return out

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        url = self._path(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", ""))
        out: dict[str, Any] = await self._send("POST", url, obj, "application/json", fieldManager=FIELD_MANAGER)
        return out

    async def patch_status(self, api: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        # server-side apply on the status subresource: a field the last status had and this one lacks is removed
        # (a merge patch would keep it: a recovered object would go on showing its old lastFailureInfo)
        body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "status": status}
        url = self._path(api, kind, namespace, name) + "/status"
        await self._send("PATCH", url, body, APPLY, fieldManager=FIELD_MANAGER, force="true")

    async def delete(self, api: str, kind: str, namespace: str, name: str) -> None:
        try:
            await self._send("DELETE", self._path(api, kind, namespace, name), None, "application/json")
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
