"""Test support: a fake Backend for driving the controller without processes or sockets (the seam a Kubernetes
backend implements too)."""

from __future__ import annotations

import asyncio
from typing import Any

from modelplane.backends.controller import Controller
from modelplane.backends.seam import Traffic
from modelplane.control.api import InferenceService
from modelplane.control.reconciler import Observed
from modelplane.control.revision import Revision


class FakeBackend:
    """Revisions become ready as soon as they are applied with a replica (or when a test says so)."""

    gateway_url = "http://gateway"
    models = None
    domain = "example.com"

    def __init__(self) -> None:
        self.known: dict[str, Revision] = {}
        self.planned: dict[str, bool] = {}
        self.running: dict[str, int] = {}
        self.routes: dict[tuple[str, str], Traffic] = {}
        self.calls: list[tuple[str, str]] = []
        self.failures: dict[str, str] = {}
        self.hold: set[str] = set()  # revisions that never become ready (a pull that hangs)
        self.broken_observe: set[str] = set()  # isvc names whose observe raises

    async def sync(self) -> None:
        self.calls.append(("sync", ""))

    async def commit(self) -> None:
        self.calls.append(("commit", ""))

    def observe(self, isvc: InferenceService, component: str, revision: Revision) -> Observed:
        if isvc.metadata.name in self.broken_observe:
            raise RuntimeError("backend cannot read this one")
        self.known[revision.key] = revision
        ready = self.running.get(revision.key, 0) if revision.key not in self.hold else 0
        return Observed(ready=ready, failure=self.failures.get(revision.key, ""))

    def plan(self, key: str, run: bool) -> None:
        self.planned[key] = run

    def report(self, key: str) -> dict[str, Any] | None:
        return {"revisionName": self.known[key].name, "replicas": self.running.get(key, 0)}

    def route(self, namespace: str, name: str, traffic: Traffic | None) -> None:
        self.calls.append(("route", name))
        if traffic is None:
            self.routes.pop((namespace, name), None)
        else:
            self.routes[(namespace, name)] = traffic

    def apply(self, key: str) -> None:
        self.calls.append(("apply", key))
        self.running[key] = 1 if self.planned.get(key) else 0

    def retire(self, live: set[str]) -> None:
        for key in [k for k in self.running if k not in live]:
            del self.running[key]
            self.calls.append(("retire", key))

    def owned(self, namespace: str, name: str) -> set[str]:
        return {k for k in self.running if k.startswith(f"{namespace}.{name}-")}


def passes(controller: Controller, n: int = 2) -> None:
    async def run() -> None:
        for _ in range(n):
            await controller.step()

    asyncio.run(run())
