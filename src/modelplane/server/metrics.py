"""Server: Prometheus metrics, one registry per server instance (KServe's histogram names)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGES = ("preprocess", "predict", "postprocess", "explain")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage = {
            stage: Histogram(f"request_{stage}_seconds", f"{stage} latency", ["model_name"], registry=self.registry)
            for stage in STAGES
        }
        self.requests = Counter(
            "modelplane_requests",
            "Inference requests by protocol and status",
            ["model_name", "protocol", "status"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def observe(self, stage: str, model_name: str, seconds: float) -> None:
        key = (stage, model_name)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.stage[stage].labels(model_name)
        child.observe(seconds)

    def count(self, model_name: str, protocol: str, status: str) -> None:
        key = ("count", model_name, protocol, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(model_name, protocol, status)
        child.inc()

    def forget(self, model_name: str) -> None:
        self._children = {k: v for k, v in self._children.items() if model_name not in k[1:]}

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
