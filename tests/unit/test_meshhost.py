"""ModelMesh's loadNow on one machine (MeshHost): a load asked for before the runtime has a ready replica waits for
one, showing Loading meanwhile, and then loads — it does not end at once with no copy, which left the model in
Standby for good (a Standby model is loaded only when a request asks for it)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.mesh import Placement
from modelplane.backends.local.meshhost import MeshHost
from modelplane.control.modelmesh import state

KEY = "default.mesh-predictor-00001.abc"
REPLICA = Endpoint("http://127.0.0.1:9000", "127.0.0.1:9001")


class Trained:
    def pulled(self, parent: tuple[str, str], name: str) -> tuple[bool, str]:
        return True, ""


class Replicas:
    def __init__(self) -> None:
        self.up: list[Endpoint] = []

    def ready(self, key: str) -> list[Endpoint]:
        return list(self.up)


class Upstream:
    def __init__(self, asked: list[str]) -> None:
        self.asked = asked

    async def request(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[Any], bytes]:
        self.asked.append(path)
        return 200, [], b"{}"


class Gateway:
    def __init__(self) -> None:
        self.replicas = Replicas()
        self.asked: list[str] = []

    def upstream(self, url: str) -> Upstream:
        return Upstream(self.asked)


class Predictors:
    def __init__(self, gateway: Gateway, placement: Placement) -> None:
        self.gateway, self.placement = gateway, placement

    def ready(self, namespace: str, isvc: str) -> list[Endpoint]:
        return self.gateway.replicas.ready(KEY)

    def placements(self, namespace: str, isvc: str) -> list[tuple[str, Placement]]:
        return [(KEY, self.placement)]

    def failures(self, namespace: str, isvc: str, model: str) -> dict[str, str]:
        return {}


def test_load_now_waits_for_the_first_ready_replica_then_loads() -> None:
    gateway = Gateway()
    predictors = Predictors(gateway, Placement())
    host = MeshHost(cast(Any, Trained()), cast(Any, predictors), cast(Any, gateway), "http://gw")

    async def run() -> None:
        host.load("default", "mesh", "m1", 1)  # the replicas are still starting
        for _ in range(5):
            await asyncio.sleep(0)
        assert state(host.seen("default", "mesh", "m1")) == "Loading"
        assert gateway.asked == []
        gateway.replicas.up.append(REPLICA)  # the first replica is ready
        task = host._loads[("default", "mesh", "m1")]
        await asyncio.wait_for(task, 10)
        assert gateway.asked == ["/v2/repository/models/m1/load"]
        assert state(host.seen("default", "mesh", "m1")) == "Loaded"

    asyncio.run(run())
