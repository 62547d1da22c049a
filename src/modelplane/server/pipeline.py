"""Server: runs a Model's preprocess → predict|explain → postprocess, keeping sync user code off the loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any

from modelplane.model.base import Model
from modelplane.protocol.errors import InferenceError, ModelplaneError
from modelplane.protocol.types import InferRequest
from modelplane.server.metrics import Metrics

log = logging.getLogger("modelplane.server")


class OffloadPolicy:
    """Decides whether a model's sync stages run on a worker thread or inline on the event loop.

    A thread hop costs ~85 µs and, under load, GIL convoys of up to the 5 ms switch interval; for a model
    whose calls take ~100 µs that is most of the request. So every model starts on the thread pool and is
    judged over windows of `window` calls: when at least `share` of them were fast, it runs inline; when
    inline and more than 1 - `share` were not, it goes back to the pool. On a thread, "fast" means at most
    `budget_s` of CPU time and `wall_s` of wall time (wall time there includes GIL waits; CPU time alone
    would let code that sleeps or blocks on I/O qualify); inline, it means `budget_s` of wall time.
    Three inline calls over `slow_s` within a window send the model back at once and double its window (one
    such call is tolerated: on a shared machine wall time includes preemption); one over `never_s` keeps it on
    the pool for good. So the loop is blocked by at most a few slow calls, and a model that is slow from the
    start never runs inline. "thread" never inlines; "inline" always does. The size of a request counts too:
    once inline, a request more than `size_factor` times larger than the largest fast one that qualified the model
    runs on a thread (a 1M-row request after many 1-row ones must not block the loop).
    """

    def __init__(
        self,
        mode: str = "auto",
        budget_s: float = 0.001,
        window: int = 64,
        share: float = 0.9,
        slow_s: float = 0.005,
        never_s: float = 0.05,
        wall_s: float = 0.02,
        strikes: int = 3,
        label: str = "",
        size_factor: int = 4,
    ) -> None:
        if mode not in ("auto", "thread", "inline"):
            raise ValueError(f"unknown offload mode {mode!r}")
        self.mode, self.budget_s, self.window, self.share = mode, budget_s, window, share
        self.slow_s, self.never_s, self.wall_s, self.strikes = slow_s, never_s, wall_s, strikes
        self._strikes = 0
        self.label = label
        self.inline = mode == "inline"
        self._seen = self._fast = 0
        self._frozen = mode != "auto"
        self.size_factor = size_factor
        self._largest = 0  # the largest request among this window's fast calls
        self.inline_limit = 0 if mode == "auto" else 2**62  # sizes above it leave the loop even when inline

    def runs_inline(self, size: int) -> bool:
        return self.inline and size <= self.inline_limit

    def record(self, seconds: float, cpu_seconds: float, was_inline: bool, size: int = 0) -> None:
        if self._frozen or was_inline != self.inline:
            return  # fixed mode, or a call that started before the last switch
        if was_inline:
            if seconds > self.slow_s:
                self._strikes += 1
                if self._strikes >= self.strikes or seconds > self.never_s:
                    self._switch(False)
                    self.window *= 2
                    self._frozen = seconds > self.never_s
                    return
            fast = seconds <= self.budget_s
        else:
            fast = cpu_seconds <= self.budget_s and seconds <= self.wall_s
            if fast:
                self._largest = max(self._largest, size)
        self._seen += 1
        self._fast += fast
        if self._seen >= self.window:
            good = self._fast >= self.share * self._seen
            self._switch(good)

    def _switch(self, inline: bool) -> None:
        if inline != self.inline:
            log.info(
                "%s: sync model code now runs %s (%d/%d recent calls fast)",
                self.label,
                "inline on the event loop" if inline else "on worker threads",
                self._fast,
                self._seen,
            )
        if inline and not self.inline:
            self.inline_limit = self.size_factor * max(self._largest, 1)
        self.inline = inline
        self._seen = self._fast = self._strikes = self._largest = 0


def request_size(payload: Any) -> int:
    """How big a request is, cheaply: tensor elements (V2), rows (V1 instances/inputs), bytes (raw bodies)."""
    if type(payload) is InferRequest:
        size = 0
        for tensor in payload.inputs:
            size += getattr(tensor.data, "size", 0)  # an ndarray, unless a model built the request itself
        return size
    inputs = getattr(payload, "inputs", None)
    if isinstance(inputs, list):
        return sum(getattr(getattr(t, "data", None), "size", 0) for t in inputs)
    if isinstance(payload, dict):
        rows = payload.get("instances", payload.get("inputs"))
        return len(rows) if isinstance(rows, list) else 0
    return len(payload) if isinstance(payload, (bytes, bytearray)) else 0


def _overridden(model: Model, stage: str) -> bool:
    return getattr(type(model), stage) is not getattr(Model, stage)


class Pipeline:
    """Per-model request pipeline; stage kinds (sync/async, overridden or not) are found once, at registration."""

    def __init__(self, model: Model, executor: Executor, metrics: Metrics, offload: str = "auto") -> None:
        self.model = model
        self.executor = executor
        self.metrics = metrics
        self.policy = OffloadPolicy(offload, label=model.name)
        self.pre = model.preprocess if _overridden(model, "preprocess") else None
        self.post = model.postprocess if _overridden(model, "postprocess") else None
        stages = [s for s in (self.pre, model.predict, model.explain, self.post) if s is not None]
        self.all_sync = not any(inspect.iscoroutinefunction(s) for s in stages)
        self.with_headers = model.return_response_headers
        self._by_verb = {verb: self._list(verb) for verb in ("predict", "explain")}  # built once, not per request

    def _list(self, verb: str) -> list[tuple[str, Callable[..., Any]]]:
        main = self.model.explain if verb == "explain" else self.model.predict
        stages = [("preprocess", self.pre), (verb, main), ("postprocess", self.post)]
        return [(name, fn) for name, fn in stages if fn is not None]

    def _run_sync(
        self, verb: str, payload: Any, headers: Mapping[str, str], out_headers: dict[str, str], cpu: bool
    ) -> tuple[Any, list[tuple[str, float]], float, float]:
        """Run every stage: the result, each stage's time, their sum, and the CPU time of this thread when `cpu` is
        asked for (only the offload policy needs it)."""
        timings = []
        cpu_start = time.thread_time() if cpu else 0.0
        clock = time.perf_counter
        start = clock()
        began = start
        for name, fn in self._by_verb[verb]:
            if self.with_headers and name in ("predict", "postprocess"):
                payload = fn(payload, headers, response_headers=out_headers)
            else:
                payload = fn(payload, headers)
            end = clock()
            timings.append((name, end - start))
            start = end
        return payload, timings, start - began, time.thread_time() - cpu_start if cpu else 0.0

    async def __call__(self, verb: str, payload: Any, headers: Mapping[str, str]) -> tuple[Any, dict[str, str]]:
        out_headers: dict[str, str] = {}
        try:
            if self.all_sync:
                size = request_size(payload)
                inline = self.policy.runs_inline(size)
                if inline:
                    result, timings, total, cpu = self._run_sync(verb, payload, headers, out_headers, False)
                else:
                    loop = asyncio.get_running_loop()
                    result, timings, total, cpu = await loop.run_in_executor(
                        self.executor, self._run_sync, verb, payload, headers, out_headers, True
                    )
                self.policy.record(total, cpu, inline, size)
            else:
                result, timings = await self._run_mixed(verb, payload, headers, out_headers)
        except ModelplaneError:
            raise
        except Exception as exc:
            raise InferenceError(f"{type(exc).__name__} : {exc}") from exc
        name = self.model.name
        for stage, seconds in timings:
            self.metrics.observe(stage, name, seconds)
        return result, out_headers

    async def _run_mixed(
        self, verb: str, payload: Any, headers: Mapping[str, str], out_headers: dict[str, str]
    ) -> tuple[Any, list[tuple[str, float]]]:
        loop = asyncio.get_running_loop()
        timings = []
        for name, fn in self._by_verb[verb]:
            kwargs = (
                {"response_headers": out_headers} if self.with_headers and name in ("predict", "postprocess") else {}
            )
            start = time.perf_counter()
            if inspect.iscoroutinefunction(fn):
                payload = await fn(payload, headers, **kwargs)
            else:
                payload = await loop.run_in_executor(self.executor, partial(fn, payload, headers, **kwargs))
            timings.append((name, time.perf_counter() - start))
        return payload, timings
