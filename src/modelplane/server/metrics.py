"""Server: Prometheus metrics, one registry per server instance (KServe's histogram names)."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelplane.server.hot_metrics import RequestMetrics

STAGES = ("preprocess", "predict", "postprocess", "explain")


class Metrics:
    def __init__(self, per_model: bool = True) -> None:
        """`per_model`: label request metrics with the model's name. Off for a model cache of thousands of models
        (each would be a series of every metric, and scraping them would cost more than serving): they are then
        counted under model_name="", and the cache's own metrics tell models apart."""
        self.per_model = per_model
        self.registry = CollectorRegistry(auto_describe=True)
        self.hot = RequestMetrics(STAGES)  # updated by every request: plain numbers, read at scrape time
        self.registry.register(self.hot)
        self.batch_size = Histogram(
            "modelplane_batch_size",
            "Rows per model call when batching",
            ["model_name"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "modelplane_queue_wait_seconds",
            "Time a request waited for its batch or its concurrency slot",
            ["model_name"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "modelplane_queue_depth",
            "Requests waiting for a concurrency slot (admission) per model",
            ["model_name"],
            registry=self.registry,
        )
        self.batch_queue_depth = Gauge(
            "modelplane_batch_queue_depth",
            "Requests waiting in the adaptive batcher per model",
            ["model_name"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "modelplane_rejected_requests",
            "Requests refused before reaching the model, by reason (overloaded, deadline)",
            ["model_name", "reason"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "modelplane_payload_log_dropped",
            "Payload-log events dropped because the sink was slow or down",
            ["model_name"],
            registry=self.registry,
        )
        self.log_sent = Counter(
            "modelplane_payload_log_sent", "Payload-log events delivered", ["model_name"], registry=self.registry
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._by_model: dict[str, list[tuple[str, ...]]] = {}  # forget() is O(that model's children)
        self._families: dict[str, Any] = {}
        cache = "modelplane_model_cache"
        self.cache_hits = Counter(f"{cache}_hits", "Requests whose model was loaded", registry=self.registry)
        self.cache_misses = Counter(
            f"{cache}_misses", "Requests that waited for their model to load", registry=self.registry
        )
        self.cache_evictions = Counter(f"{cache}_evictions", "Models unloaded to make room", registry=self.registry)
        self.cache_load_failures = Counter(f"{cache}_load_failures", "Model loads that failed", registry=self.registry)
        self.cache_load_seconds = Histogram(
            f"{cache}_load_seconds",
            "Time to load a model on a cache miss, by the size of its files (small <= 16 KiB < medium <= 256 KiB)",
            ["size"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

    def observe(self, stage: str, model_name: str, seconds: float) -> None:
        self.hot.observe(stage, model_name if self.per_model else "", seconds)

    def count(self, model_name: str, protocol: str, status: str) -> None:
        self.hot.count(model_name if self.per_model else "", protocol, status)

    def _child(self, family: str, metric: Any, *labels: str) -> Any:
        if not self.per_model:
            labels = ("", *labels[1:])
        key = (family, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
            self._families[family] = metric
            self._by_model.setdefault(labels[0], []).append(key)
        return child

    def watch_cache(self, cache: Any) -> None:
        """Gauges read from the model cache at scrape time (bytes, capacity, models by state, LRU age)."""
        prefix = "modelplane_model_cache"
        lru = cache.lru
        for name, doc, read in (
            (f"{prefix}_capacity_bytes", "Bytes the loaded models may hold", lambda: lru.capacity),
            (f"{prefix}_loaded_bytes", "Bytes charged for loaded and loading models", lambda: lru.used),
            (f"{prefix}_loaded_models", "Models loaded or loading", lambda: len(lru)),
            (f"{prefix}_registered_models", "Models registered (loaded or not)", lambda: len(cache)),
            (f"{prefix}_lru_age_seconds", "Seconds since the least recently used model was used", cache.lru_age),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)

    def observe_batch(self, model_name: str, rows: int) -> None:
        self._child("batch", self.batch_size, model_name).observe(rows)

    def observe_queue_wait(self, model_name: str, seconds: float) -> None:
        self._child("wait", self.queue_wait, model_name).observe(seconds)

    def set_queue_depth(self, model_name: str, depth: int) -> None:
        self._child("depth", self.queue_depth, model_name).set(depth)

    def set_batch_queue_depth(self, model_name: str, depth: int) -> None:
        self._child("batch_depth", self.batch_queue_depth, model_name).set(depth)

    def reject(self, model_name: str, reason: str) -> None:
        self._child("rejected", self.rejected, model_name, reason).inc()

    def log_event(self, model_name: str, delivered: bool, count: int = 1) -> None:
        if delivered:
            self._child("log_sent", self.log_sent, model_name).inc(count)
        else:
            self._child("log_dropped", self.log_dropped, model_name).inc(count)

    def forget(self, model_name: str) -> None:
        """Drop an unloaded model's series (label values stay bounded by the models loaded)."""
        if not self.per_model:
            return
        self.hot.forget(model_name)
        for key in self._by_model.pop(model_name, ()):
            self._children.pop(key, None)
            with contextlib.suppress(KeyError):
                self._families[key[0]].remove(*key[1:])

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
