"""Kubernetes backend: the operator process. kopf watches InferenceServices, runtimes, revisions and everything they
render; each event updates the cache and queues the InferenceService it concerns; workers reconcile one
InferenceService each at a time through the shared Controller over the ClusterBackend. kopf's per-object
handler state is not used (no annotations written on users' objects): the handlers only feed the cache."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelplane.backends.controller import Controller
from modelplane.backends.kubernetes import admission
from modelplane.backends.kubernetes.admission import WEBHOOK_CONFIGURATION, self_signed
from modelplane.backends.kubernetes.backend import ClusterBackend
from modelplane.backends.kubernetes.cache import Cache, Key
from modelplane.backends.kubernetes.client import RESOURCES, HttpWriter
from modelplane.backends.kubernetes.config import CONFIGMAP, ClusterConfig
from modelplane.backends.kubernetes.events import ISVC, RUNTIMES, TRAINED, WorkQueue, matters
from modelplane.backends.kubernetes.render.meta import ISVC_LABEL
from modelplane.control import modelmesh as mm

log = logging.getLogger("modelplane.operator")
RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # after consecutive failures of one InferenceService
WATCHED = list(RESOURCES)


MESH_PASS = f"{mm.SERVICE}-"  # the queue key of a namespace's ModelMesh pass (no object can have this name)


def _queue_key(namespace: str, name: str, meta: dict[str, Any]) -> Key:
    """What an event about (namespace, name) queues. ModelMesh InferenceServices and runtimes' shared deployments
    are decided together, one pass over the namespace's mesh: their events share one key, so a burst of n of them
    is a few passes (the queue runs a key once at a time, and again if it was queued meanwhile), not n passes over
    all n. One that just left the mesh has lost the annotation: it is reconciled by its own name, which runs the
    mesh pass too."""
    if mm.annotated_modelmesh(meta) or mm.is_shared_deployment(name):
        return (namespace, MESH_PASS)
    return (namespace, name)


class Operator:
    def __init__(self, cache: Cache, controller: Controller, workers: int = 8) -> None:
        self.cache = cache
        self.controller = controller
        self.queue = WorkQueue()
        self.workers = workers
        self._failures: dict[Key, int] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self._retries: dict[Key, asyncio.TimerHandle] = {}

    def _retry(self, key: Key) -> None:
        self._retries.pop(key, None)
        self.queue.add(key)

    def event(self, kind: tuple[str, str], body: dict[str, Any], deleted: bool) -> None:
        """A watch event: the cache follows it; the InferenceServices it concerns are queued when it can change
        what they decide — not for the echo of the operator's own write, nor for status the operator never reads
        (an HPA's, its own status on the InferenceService)."""
        meta = body.get("metadata") or {}
        old = self.cache.get(
            body.get("apiVersion", ""), body.get("kind", ""), meta.get("namespace") or "", meta.get("name", "")
        )
        if deleted:
            self.cache.gone(body)
        else:
            self.cache.seen(body)
        if deleted or old is None or matters(kind, old, body):
            for key in self.affected(kind, body):
                self.queue.add(key)

    def affected(self, kind: tuple[str, str], body: dict[str, Any]) -> Iterable[Key]:
        meta = body.get("metadata") or {}
        ns = meta.get("namespace") or ""
        if kind == ISVC:
            return [_queue_key(ns, meta.get("name", ""), meta)]
        if kind in RUNTIMES:  # runtime selection may change for every InferenceService it could serve
            return {
                _queue_key(d["metadata"].get("namespace", ""), d["metadata"]["name"], d["metadata"])
                for d in self.cache.list("InferenceService", ns or None)
            }
        if kind == TRAINED:  # its InferenceService writes its model list and its status
            parent = (body.get("spec") or {}).get("inferenceService")
            return [(ns, parent)] if isinstance(parent, str) and parent else []
        owner = (meta.get("labels") or {}).get(ISVC_LABEL)
        return [_queue_key(ns, owner, {})] if owner else []

    async def work(self) -> None:
        while True:
            key, waited = await self.queue.get()
            written = self.controller.backend.written  # type: ignore[attr-defined]
            before = written.get(key, 0)
            started = time.monotonic()
            try:
                await self.controller.reconcile(*key)
                self._failures.pop(key, None)
                took, n = (time.monotonic() - started) * 1e3, written.get(key, 0) - before
                log.info("reconciled %s/%s: %d writes (queued %.0f ms, took %.0f ms)", *key, n, waited * 1e3, took)
            except Exception as exc:  # the API refused a write, or the server went away: retried with backoff
                n = self._failures.get(key, 0)
                self._failures[key] = n + 1
                delay = RETRY_S[min(n, len(RETRY_S) - 1)]
                log.warning("reconciling %s/%s failed (%s); retrying in %.1f s", *key, exc, delay)
                if key not in self._retries:  # one pending retry per key, however many events fail meanwhile
                    self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)
            finally:
                self.queue.done(key)


@dataclass(frozen=True)
class Webhooks:
    """Where the admission webhooks listen (port 0: not served) and the name the API server calls them by."""

    port: int = 0
    host: str = "127.0.0.1"
    certfile: str | None = None
    keyfile: str | None = None

    def bind_address(self) -> str:
        """The host itself when it is an address (loopback by default); all interfaces when the API server calls
        a DNS name (a Service in front of the operator's pod)."""
        import ipaddress

        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return "0.0.0.0"  # in a pod, behind its Service
        return self.host


def register(operator: Operator, registry: Any, config_namespace: str, webhooks: Webhooks = Webhooks()) -> None:
    """kopf handlers on `registry`: one event handler per watched resource, all feeding `operator.event`; the
    admission webhooks when a port is given."""
    import kopf

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: Any, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.batching.batch_window = 0.01  # kopf's default waits 0.1 s per object for more events
        if webhooks.port:
            settings.admission.server = kopf.WebhookServer(
                addr=webhooks.bind_address(),
                port=webhooks.port,
                host=webhooks.host,
                certfile=webhooks.certfile,
                pkeyfile=webhooks.keyfile,
                cafile=webhooks.certfile,  # self-signed: the certificate is its own CA bundle
            )
            settings.admission.managed = WEBHOOK_CONFIGURATION  # kopf keeps both webhook configurations

    for api, kind in WATCHED:
        plural = RESOURCES[(api, kind)][0]
        group, _, version = api.rpartition("/")
        mine = (api, kind) == ISVC or (api, kind) in RUNTIMES or (api, kind) == TRAINED  # the users' objects
        labels = None if mine else {ISVC_LABEL: kopf.PRESENT}

        # async: kopf runs it on the event loop, where the cache and the queue live (a sync handler would run in
        # kopf's thread pool, racing the workers)
        async def handler(event: dict[str, Any], resource_kind: tuple[str, str] = (api, kind), **_: Any) -> None:
            operator.event(resource_kind, event["object"], event.get("type") == "DELETED")

        kopf.on.event(group, version, plural, labels=labels, registry=registry, id=f"watch-{kind}-{version}")(handler)

    @kopf.on.startup(registry=registry)
    async def start_workers(**_: Any) -> None:
        loop = asyncio.get_running_loop()
        operator.tasks = [loop.create_task(operator.work()) for _ in range(operator.workers)]
        for doc in operator.cache.list("InferenceService"):  # every one once at start: what changed while away
            operator.queue.add((doc["metadata"].get("namespace", ""), doc["metadata"]["name"]))
        for doc in operator.cache.list("TrainedModel"):  # and the parents TrainedModels name (gone ones delete them)
            for key in operator.affected(TRAINED, doc):
                operator.queue.add(key)
        log.info("modelplane operator: %d workers; config from %s/%s", operator.workers, config_namespace, CONFIGMAP)


async def prime(cache: Cache, kubeconfig: str | None, namespace: str | None) -> set[tuple[str, str]]:
    """Fill the cache with one LIST per watched resource before any reconcile, so that a restarted operator
    compares against what is there and writes nothing that has not changed. A resource the cluster does not
    serve (Knative, Gateway API, KEDA not installed) is skipped."""
    from lightkube import ApiError as LightkubeError
    from lightkube import AsyncClient, KubeConfig

    from modelplane.backends.kubernetes.client import generic

    client = AsyncClient(config=KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env())
    served: set[tuple[str, str]] = set()
    try:
        for api, kind in WATCHED:
            res = generic(api, kind)
            scope = {"namespace": namespace or "*"} if RESOURCES[(api, kind)][1] else {}
            try:
                async for item in client.list(res, **scope):
                    body = dict(item.to_dict())
                    body.setdefault("apiVersion", api)
                    body.setdefault("kind", kind)
                    cache.seen(body)
                served.add((api, kind))
            except LightkubeError as exc:
                if exc.status.code != 404:
                    raise
    finally:
        await client.close()
    return served


async def read_config(kubeconfig: str | None, namespace: str) -> ClusterConfig:
    """The `inferenceservice-config` ConfigMap, when there is one (KServe's defaults otherwise)."""
    from lightkube import ApiError as LightkubeError
    from lightkube import AsyncClient, KubeConfig
    from lightkube.resources.core_v1 import ConfigMap

    client = AsyncClient(config=KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env())
    try:
        cm = await client.get(ConfigMap, CONFIGMAP, namespace=namespace)
    except LightkubeError as exc:
        if exc.status.code == 404:
            return ClusterConfig()
        raise
    finally:
        await client.close()
    return ClusterConfig.from_configmap(dict(cm.data or {}))


def run(
    kubeconfig: str | None,
    namespace: str | None,
    workers: int,
    config_namespace: str,
    webhooks: Webhooks = Webhooks(),
) -> None:
    """The operator's main: until SIGINT/SIGTERM."""
    import tempfile

    import kopf

    if webhooks.port and not webhooks.certfile:
        cert, key = self_signed(Path(tempfile.mkdtemp(prefix="modelplane-webhook-")), webhooks.host)
        webhooks = replace(webhooks, certfile=str(cert), keyfile=str(key))

    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's own login reads it

    async def main() -> None:
        config = await read_config(kubeconfig, config_namespace)
        cache = Cache()
        served = await prime(cache, kubeconfig, namespace)
        if ("autoscaling/v2", "HorizontalPodAutoscaler") not in served:  # Kubernetes < 1.23
            config = replace(config, hpa_version="v2beta2")
        log.info("serving what the cluster has: %s", ", ".join(sorted(k for _, k in served)))
        writer = HttpWriter(kubeconfig)
        backend = ClusterBackend(cache, writer, config)
        operator = Operator(cache, Controller(cache, backend), workers)
        registry = kopf.OperatorRegistry()
        register(operator, registry, config_namespace, webhooks)
        if webhooks.port:
            admission.register(registry, config.default_mode, cache.list)
        try:
            await kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=namespace is None,
                namespaces=[namespace] if namespace else (),
            )
        finally:
            await writer.close()

    asyncio.run(main())
