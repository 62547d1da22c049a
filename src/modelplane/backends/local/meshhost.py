"""Local backend: the multi-model predictors as the model puller and the controller see them — their ready replicas
and placements (`Predictors`, for TrainedModels), and `MeshHost`, the ModelHost of ModelMesh InferenceServices:
their models pulled into the runtime's shared repository, copies loaded on request (loadNow), how each is doing."""

from __future__ import annotations

import asyncio
import json
import logging

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.gateway import Gateway
from modelplane.backends.local.mesh import Placement
from modelplane.backends.local.revision import Revisions
from modelplane.backends.local.trainedmodels import TrainedModels
from modelplane.backends.local.upstream import UpstreamError
from modelplane.control.modelmesh import ModelObserved

log = logging.getLogger("modelplane.controller")
LOAD_TIMEOUT_S = 90.0  # modelmesh's modelLoadingTimeoutMillis default
READY_POLL_S = 0.1  # how often a load waiting for the runtime's first ready replica looks again


class Predictors:
    """The predictor replicas of an InferenceService and where its models failed to load."""

    def __init__(self, revisions: Revisions, gateway: Gateway) -> None:
        self.revisions = revisions
        self.gateway = gateway

    def keys(self, namespace: str, name: str) -> list[str]:
        return [s.key for s in self.revisions if s.owner == (namespace, name, "predictor")]

    def ready(self, namespace: str, isvc: str) -> list[Endpoint]:
        return [e for key in self.keys(namespace, isvc) for e in self.gateway.replicas.ready(key)]

    def placements(self, namespace: str, isvc: str) -> list[tuple[str, Placement]]:
        """(revision, placement) of each predictor revision the gateway routes by model (made here if no request
        made it yet)."""
        route = self.gateway.routes.get((namespace, isvc))
        out = []
        for key in self.keys(namespace, isvc):
            pool = self.gateway.pools.get(key)
            if pool is None and route is not None and route.model_routing:
                pool = self.gateway.pool(key, route)
            if pool is not None and pool.placement is not None:
                out.append((key, pool.placement))
        return out

    def failures(self, namespace: str, isvc: str, model: str) -> dict[str, str]:
        return {r: m for _, p in self.placements(namespace, isvc) for r, m in p.failures(model).items()}

    def forgive(self, namespace: str, isvc: str, model: str) -> None:
        for _, placement in self.placements(namespace, isvc):
            placement.forgive(model)


class MeshHost:
    """ModelHost (backends/seam.py) on one machine. Loads run as tasks on the event loop, one per model at a
    time; their outcome shows in `seen` (the placement's copies and failures)."""

    def __init__(self, trained: TrainedModels, predictors: Predictors, gateway: Gateway, gateway_url: str) -> None:
        self.gateway_url = gateway_url
        self.trained = trained
        self.predictors = predictors
        self.gateway = gateway
        self._loads: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    def host(self, namespace: str, isvc: str, models: dict[str, str | None]) -> None:
        self.trained.host((namespace, isvc), models)

    def urls(self, namespace: str, isvc: str, vmodel: str) -> dict[str, str]:
        url = f"{self.gateway_url}/serving/{namespace}/{vmodel}"  # its own route on the gateway
        return {"url": url, "restUrl": url}

    def seen(self, namespace: str, isvc: str, model: str) -> ModelObserved:
        pulled, error = self.trained.pulled((namespace, isvc), model)
        copies, failures = 0, {}
        for key, placement in self.predictors.placements(namespace, isvc):
            ready = {e.http for e in self.gateway.replicas.ready(key)}
            copies += len(ready & set(placement.registry.copies(model)))
            failures.update(placement.failures(model))
        task = self._loads.get((namespace, isvc, model))
        loading = task is not None and not task.done()
        return ModelObserved(pulled, error, copies, loading, failures)

    def load(self, namespace: str, isvc: str, model: str, copies: int) -> None:
        key = (namespace, isvc, model)
        task = self._loads.get(key)
        if copies <= 0 or (task is not None and not task.done()):
            return
        if not self.trained.pulled((namespace, isvc), model)[0]:
            return  # asked again next pass, once its files are in
        self._loads[key] = asyncio.get_running_loop().create_task(self._load(namespace, isvc, model, copies))
        for done in [k for k, t in self._loads.items() if t.done()]:
            del self._loads[done]

    async def _load(self, namespace: str, isvc: str, model: str, copies: int) -> None:
        """Load the model on replicas that lack it until `copies` hold it: placed by ModelMesh's rules, a failure
        recorded (that replica is passed over, the next is tried). A load asked for before the runtime has a ready
        replica waits for one (up to LOAD_TIMEOUT_S), as ModelMesh's loadNow waits for a pod: had it ended at once,
        the model would show Standby with no copy, and a model seen in Standby is not loaded again until asked."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOAD_TIMEOUT_S
        while not self.predictors.ready(namespace, isvc):
            if loop.time() > deadline:
                return
            await asyncio.sleep(READY_POLL_S)
        for key, placement in self.predictors.placements(namespace, isvc):
            while True:
                ready = self.gateway.replicas.ready(key)
                held = set(placement.registry.copies(model))
                if sum(e.http in held for e in ready) >= copies:
                    break
                target = placement.spare(model, ready, {})
                if target is None:
                    break  # every replica holds it or failed it
                if await self._load_on(placement, target, model):
                    placement.loaded(model, target.http)  # counted as a copy once it is loaded, not before

    async def _load_on(self, placement: Placement, target: Endpoint, model: str) -> bool:
        path = f"/v2/repository/models/{model}/load"
        try:
            status, _, body = await asyncio.wait_for(
                self.gateway.upstream(target.http).request(
                    "POST", path, [(b"content-type", b"application/json")], b"{}"
                ),
                LOAD_TIMEOUT_S,
            )
        except (UpstreamError, TimeoutError, OSError, ValueError) as exc:
            status, body = 0, f"{type(exc).__name__}: {exc}".encode()
        if status == 200:
            log.info("model %s loaded on %s", model, target.http)
            return True
        try:
            message = str(json.loads(bytes(body)).get("error", ""))
        except (ValueError, AttributeError):
            message = bytes(body)[:500].decode("utf-8", "replace")
        log.warning("loading %s on %s failed (%d): %s", model, target.http, status, message)
        placement.failed(model, target.http, message or f"load answered {status}")
        return False
