"""Server: the protocol-neutral core of generative requests — find the model with the capability asked, render a
chat through its template, run every prompt's choices and merge their deltas, and measure what LLM users watch
(time to first token, inter-token latency, tokens in and out; running and waiting sequences and KV-cache use are
read from the engines when scraped). The OpenAI and V2 generate routes are thin adapters over it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from modelplane.model.generative import EmbeddingModel, GenerativeModel
from modelplane.protocol.errors import InvalidInput, ModelNotFound
from modelplane.protocol.generation import Delta, GenerationRequest
from modelplane.server.metrics import Metrics
from modelplane.server.registry import ModelRegistry

M = TypeVar("M", GenerativeModel, EmbeddingModel)
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)


class Generation:
    def __init__(self, registry: ModelRegistry, metrics: Metrics) -> None:
        self.registry = registry
        reg = metrics.registry
        self.ttft = Histogram(
            "modelplane_llm_time_to_first_token_seconds",
            "Time to first token",
            ["model_name"],
            buckets=_LATENCY,
            registry=reg,
        )
        self.itl = Histogram(
            "modelplane_llm_inter_token_latency_seconds",
            "Time between output tokens",
            ["model_name"],
            buckets=_LATENCY,
            registry=reg,
        )
        self.tokens = Counter(
            "modelplane_llm_tokens",
            "Tokens processed, by direction (prompt, generation)",
            ["model_name", "direction"],
            registry=reg,
        )
        reg.register(_EngineCollector(registry))

    # --- lookups --------------------------------------------------------------------------------------------
    def model(self, name: str, kind: type[M]) -> M:
        model = self.registry.ready_entry(name).model
        if not isinstance(model, kind):
            what = "text generation" if kind is GenerativeModel else "embeddings"
            raise InvalidInput(f"model {name} does not serve {what}", param="model")
        return model

    def served(self) -> list[tuple[str, int]]:
        """(name, created) of every ready model that serves an OpenAI route."""
        out = []
        for name in self.registry.names():
            model = self.registry.entry(name).model
            if model.ready and isinstance(model, (GenerativeModel, EmbeddingModel)):
                out.append((name, model.created))
        return out

    def served_model(self, name: str) -> tuple[str, int]:
        for item in self.served():
            if item[0] == name:
                return item
        raise ModelNotFound(name)

    # --- generation -----------------------------------------------------------------------------------------
    def prepare(
        self,
        model: GenerativeModel,
        requests: list[GenerationRequest],
        messages: list[dict[str, Any]],
        template: str | None,
    ) -> None:
        """Render a chat into its prompt (the runtime tokenizes it once and reports its tokens on every delta)."""
        if messages:
            requests[0].prompt = model.chat_prompt(messages, template)

    async def run(self, name: str, model: GenerativeModel, requests: list[GenerationRequest]) -> AsyncIterator[Delta]:
        """The deltas of every prompt's choices as they come; prompt p's choice i is reported as p * n + i."""
        entry = self.registry.ready_entry(name)
        entry.enter()  # an unload waits for this stream
        start = time.perf_counter()
        last: dict[int, float] = {}
        ttft, itl = self.ttft.labels(name), self.itl.labels(name)
        out_tokens = self.tokens.labels(name, "generation")
        try:
            async for delta in _merge(model, requests):
                now = time.perf_counter()
                if delta.index not in last:
                    ttft.observe(now - start)
                    if delta.prompt_tokens:
                        self.tokens.labels(name, "prompt").inc(delta.prompt_tokens)
                elif delta.token_ids:
                    itl.observe((now - last[delta.index]) / len(delta.token_ids))
                last[delta.index] = now
                out_tokens.inc(len(delta.token_ids))
                yield delta
        finally:
            entry.leave()


async def _merge(model: GenerativeModel, requests: list[GenerationRequest]) -> AsyncIterator[Delta]:
    if len(requests) == 1:
        async for delta in model.generate(requests[0]):
            yield delta
        return
    queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()

    async def pump(p: int, request: GenerationRequest) -> None:
        try:
            async for delta in model.generate(request):
                delta.index += p * request.n
                queue.put_nowait(delta)
        except BaseException as exc:  # handed to the reader, who raises it
            queue.put_nowait(exc)
            return
        queue.put_nowait(None)

    tasks = [asyncio.ensure_future(pump(p, r)) for p, r in enumerate(requests)]
    try:
        pending = len(tasks)
        while pending:
            item = await queue.get()
            if item is None:
                pending -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


class _EngineCollector:
    """Running and waiting sequences and KV-cache use of each generative model, read when scraped."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        running = GaugeMetricFamily(
            "modelplane_llm_running_sequences", "Sequences being decoded", labels=["model_name"]
        )
        waiting = GaugeMetricFamily("modelplane_llm_waiting_sequences", "Sequences queued", labels=["model_name"])
        kv = GaugeMetricFamily(
            "modelplane_llm_kv_cache_usage", "Share of the KV-cache bound in use", labels=["model_name"]
        )
        made = CounterMetricFamily(
            "modelplane_llm_engine_tokens", "Tokens the engine generated (read or not)", labels=["model_name"]
        )
        queued = GaugeMetricFamily(
            "modelplane_llm_waiting_tokens", "Prompt tokens of the sequences waiting for a slot", labels=["model_name"]
        )
        hits = CounterMetricFamily(
            "modelplane_llm_prefix_cache_hit_tokens", "Prompt tokens taken from the prefix cache", labels=["model_name"]
        )
        for name in self.registry.names():
            model = self.registry.entry(name).model
            if isinstance(model, GenerativeModel) and model.ready:
                stats = model.stats()
                running.add_metric([name], stats.running)
                waiting.add_metric([name], stats.waiting)
                kv.add_metric([name], stats.kv_cache_usage)
                made.add_metric([name], stats.generated_tokens)
                hits.add_metric([name], stats.prefix_hit_tokens)
                queued.add_metric([name], stats.waiting_tokens)
        yield from (running, waiting, kv, made, hits, queued)
