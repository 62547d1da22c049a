"""Server: the model registry (register, load, unload, readiness) and the repository that creates models by name."""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

from modelplane.model.base import Model
from modelplane.model.options import Batching, Limits
from modelplane.protocol.errors import (
    Forbidden,
    InvalidInput,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    ModelplaneError,
)
from modelplane.server.admission import Admission
from modelplane.server.batching import Batcher
from modelplane.server.metrics import Metrics
from modelplane.server.pipeline import Pipeline

log = logging.getLogger("modelplane.server")

ModelFactory = Callable[[str], Model]
Discover = Callable[[], list[str]]
MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")  # one path segment, never "." or ".."
CONTROL_MODES = ("explicit", "none")  # Triton's --model-control-mode: "none" refuses repository load/unload


def check_model_name(name: str) -> str:
    """A model name the repository may turn into a path: one segment, no separators, not '.' or '..'."""
    if not MODEL_NAME.match(name) or name.strip(".") == "":
        raise InvalidInput(f"invalid model name {name[:80]!r}: letters, digits, '_', '.', '-', not starting with '.'")
    return name


@dataclass(slots=True)
class Entry:
    """One registered model and what serves it. Requests hold it between enter() and leave(); an unload waits for
    them (they finish on the model they started with) and refuses new ones."""

    model: Model
    pipeline: Pipeline
    admission: Admission
    batcher: Batcher | None = None
    reason: str = ""
    inflight: int = 0
    closing: bool = False
    _drained: asyncio.Event | None = None

    def enter(self) -> None:
        if self.closing:
            raise ModelNotReady(self.model.name, "it is being unloaded")
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._drained is not None:
            self._drained.set()

    async def drained(self) -> None:
        self.closing = True
        if self.inflight:
            self._drained = asyncio.Event()
            await self._drained.wait()


class ModelRegistry:
    """Registered models by name. `factory` (optional) creates a model for a name the repository knows."""

    def __init__(
        self,
        executor: Executor,
        metrics: Metrics,
        factory: ModelFactory | None = None,
        offload: str = "auto",
        discover: Discover | None = None,
        batching: Batching | None = None,
        limits: Limits | None = None,
        control_mode: str = "explicit",
    ) -> None:
        if control_mode not in CONTROL_MODES:
            raise ValueError(f"model control mode must be one of {', '.join(CONTROL_MODES)}, got {control_mode!r}")
        self.control_mode = control_mode
        self._batching = batching
        self._limits = limits or Limits()
        self._entries: dict[str, Entry] = {}
        self._executor = executor
        self._metrics = metrics
        self._factory = factory
        self._discover = discover
        self._offload = offload
        self._expected: list[str] = []
        # a lock per name only while someone holds or waits for it (unknown names must not grow the table)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def register(self, model: Model) -> None:
        batching = model.batching or self._batching
        # a batched model runs on a thread so the loop keeps queueing requests while a batch computes
        pipeline = Pipeline(model, self._executor, self._metrics, "thread" if batching else self._offload)
        admission = Admission(model.name, model.limits or self._limits, self._metrics)
        batcher = None
        if batching is not None:
            batcher = Batcher(model.name, batching, partial(pipeline, "predict"), self._metrics)
        self._entries[model.name] = Entry(model, pipeline, admission, batcher)

    def set_executor(self, executor: Executor) -> None:
        self._executor = executor
        for entry in self._entries.values():
            entry.pipeline.executor = executor

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFound(name)
        return entry

    def loaded(self, name: str) -> Entry | None:
        """The entry of `name` if it is loaded, ready and not being unloaded (the model cache's hit test)."""
        entry = self._entries.get(name)
        if entry is None or entry.closing or not entry.model.ready:
            return None
        return entry

    async def discard(self, name: str) -> None:
        """Drop the entry a failed load left behind (nothing was loaded: its unload is not called)."""
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None and not entry.model.ready:
                del self._entries[name]
                self._metrics.forget(name)

    def ready_entry(self, name: str) -> Entry:
        entry = self.entry(name)
        if not entry.model.ready:
            raise ModelNotReady(name, entry.reason)
        return entry

    def has(self, name: str) -> bool:
        return name in self._entries

    def unloaded(self, name: str) -> bool:
        """`name` is in the repository but not registered (never loaded, or unloaded)."""
        return name not in self._entries and self._discover is not None and name in self._discover()

    def expect(self, names: list[str]) -> None:
        """The models this server was started for: it is ready only while every one of them is loaded and ready."""
        self._expected = list(names)

    def all_ready(self) -> bool:
        entries = self._entries
        if any(name not in entries for name in self._expected):
            return False
        return all(e.model.ready for e in entries.values())

    async def _call(self, fn: Callable[[], object]) -> object:
        if inspect.iscoroutinefunction(fn):
            return await fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def check_mutable(self, name: str) -> None:
        """Repository load/unload is allowed, and `name` is a valid one-segment model name."""
        if self.control_mode == "none":
            raise Forbidden("repository load/unload is disabled on this server (--model-control-mode none)")
        check_model_name(name)

    def _lock(self, name: str) -> asyncio.Lock:
        """One lock per name while anyone holds or waits for it: load and unload of a name are linearizable."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def load(self, name: str) -> Model:
        """Load (or reload) `name`, creating it through the factory when it is not registered yet."""
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is None:
                if self._factory is None:
                    raise ModelNotFound(name)
                try:
                    model = self._factory(name)
                except ModelplaneError:
                    raise
                except Exception as exc:
                    raise ModelLoadError(f"cannot create model {name}: {type(exc).__name__}: {exc}") from exc
                self.register(model)
                entry = self._entries[name]
            try:
                ok = await self._call(entry.model.load)
            except Exception as exc:
                entry.model.ready = False
                entry.reason = f"{type(exc).__name__}: {exc}"
                log.exception("loading model %s failed", name)
                raise ModelNotReady(name, f"Error type: {type(exc).__name__} error msg: {exc}") from exc
            if ok is not None:
                entry.model.ready = bool(ok)
            if not entry.model.ready:
                entry.reason = "load() did not make the model ready"
                raise ModelNotReady(name, entry.reason)
            entry.reason = ""
            return entry.model

    async def unload(self, name: str) -> None:
        """Unregister `name` at once (new requests: 404), let requests in flight finish on it, then unload it."""
        async with self._lock(name):
            entry = self.entry(name)
            del self._entries[name]
            try:
                await entry.drained()
                await self._call(entry.model.unload)
            finally:
                entry.model.ready = False
                self._metrics.forget(name)

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        out = []
        for name, e in self._entries.items():
            if ready_only and not e.model.ready:
                continue
            out.append(
                {
                    "name": name,
                    "version": e.model.version or "",
                    "state": "READY" if e.model.ready else "UNAVAILABLE",
                    "reason": e.reason,
                }
            )
        if not ready_only and self._discover is not None:
            known = set(self._entries)
            out.extend(
                {"name": n, "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
                for n in self._discover()
                if n not in known
            )
        return out
