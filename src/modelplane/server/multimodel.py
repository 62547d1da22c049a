"""Server: many models in one process — models registered without loading (Standby), loaded on their first
request, evicted least-recently-used by bytes, failed loads retried after a back-off. The data plane's way to a
model when --model-cache-bytes is set; the registry still owns the loaded models."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelplane.protocol.errors import InvalidInput, ModelNotFound, ModelNotReady, ModelplaneError, Overloaded
from modelplane.server.lru import ByteLRU, NoRoom
from modelplane.server.memory import Trimmer, disk_bytes
from modelplane.server.metrics import Metrics
from modelplane.server.registry import Entry, ModelRegistry, check_model_name
from modelplane.server.settings import ModelCacheConfig

log = logging.getLogger("modelplane.server")

# What a loaded model costs beyond what its runtime reports: the registry's entry, pipeline and admission, the metric
# series of its first request, the framework's Python objects. Measured about 10.4 KB a model (RSS slope over 1,000
# scikit-learn trees: 5.5 KB at load, 4.9 KB more after one request each — docs/benchmarks.md); charged with margin.
OVERHEAD_BYTES = 16 * 1024


class State(enum.Enum):
    STANDBY = "standby"  # registered, not loaded: the next request loads it
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"  # the last load failed: a request after the back-off tries again
    UNLOADED = "unloaded"  # unloaded through the repository API: not served until it is loaded again


# Whether the request in this context waited for its model to load: each request runs in its own task, so the
# transport can answer `x-model-cache: hit | miss` without the data plane's calls carrying it.
_MISSED: contextvars.ContextVar[bool] = contextvars.ContextVar("modelplane_model_cache_missed", default=False)
INDEX_STATE = {State.READY: "READY", State.LOADING: "LOADING"}  # the rest are UNAVAILABLE, with a reason


class LoadFailed(ModelNotReady):
    """The model could not be loaded here (now, or within its back-off): a gateway routing by model tries another
    replica when it sees the header."""

    headers = {"x-model-cache": "failed"}


@dataclass(slots=True)
class Registration:
    """One model the server knows. `estimate`: its files' bytes, read at its first load."""

    name: str
    pinned: bool = False
    state: State = State.STANDBY
    estimate: int | None = None
    loading: asyncio.Task[Entry] | None = None
    failures: int = 0
    retry_at: float = 0.0
    reason: str = ""


def size_class(files: int) -> str:
    """The load-time histogram's `size` label: small (<= 16 KiB of files), medium (<= 256 KiB) or large."""
    return "small" if files <= 16 * 1024 else "medium" if files <= 256 * 1024 else "large"


class ModelCache:
    """Registrations by name (O(1) to add, find, load, route) and the byte-capacity LRU of the loaded ones."""

    def __init__(
        self,
        registry: ModelRegistry,
        config: ModelCacheConfig,
        metrics: Metrics,
        locate: Callable[[str], Path | None] = lambda name: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self._locate = locate  # where a model's files are, for the size estimated before its first load
        self.config = config
        self.metrics = metrics
        self.lru = ByteLRU(config.capacity_bytes, config.min_age_s)
        self._clock = clock
        self._regs: dict[str, Registration] = {}
        self._loading: set[str] = set()  # never chosen for eviction while they load
        self._loads: asyncio.Semaphore | None = None
        self._trim = Trimmer()
        metrics.watch_cache(self)

    # --- registrations -------------------------------------------------------------------------------------
    def register(self, name: str, pinned: bool = False) -> Registration:
        reg = self._regs.get(name)
        if reg is None:
            reg = self._regs[name] = Registration(name, pinned or name in self.config.pinned)
        return reg

    def __len__(self) -> int:
        return len(self._regs)

    def known(self, name: str) -> bool:
        return name in self._regs

    def lru_age(self) -> float:
        return self.lru.oldest_age(self._clock())

    def state(self, name: str) -> State:
        reg = self._regs.get(name)
        if reg is None:
            raise ModelNotFound(name)
        return reg.state

    # --- the request path ------------------------------------------------------------------------------------
    async def acquire(self, name: str) -> Entry:
        """The loaded model a request is for: a hit touches the LRU, a miss loads (or waits for the load under way)."""
        entry = self.registry.loaded(name)
        if entry is not None:
            self.lru.touch(name, self._clock())
            self.metrics.cache_hits.inc()
            return entry
        reg = self._regs.get(name) or self._discover(name)
        if reg is None:
            raise ModelNotFound(name)
        if reg.state is State.UNLOADED:
            raise ModelNotReady(name, "it was unloaded through the repository API; load it to serve it again")
        if reg.state is State.FAILED and reg.loading is None and self._clock() < reg.retry_at:
            wait = reg.retry_at - self._clock()
            raise LoadFailed(name, f"its last load failed ({reg.reason}); it is tried again in {wait:.0f} s")
        self.metrics.cache_misses.inc()
        _MISSED.set(True)
        return await self._wait(reg)

    def _discover(self, name: str) -> Registration | None:
        """A model directory that appeared after the start (a TrainedModel pulled in): registered on its first
        request. Nothing is registered for a name without a directory, so unknown names cannot grow the table."""
        try:
            check_model_name(name)
        except InvalidInput:
            return None
        path = self._locate(name)
        return self.register(name) if path is not None and path.is_dir() else None

    async def load(self, name: str) -> Entry:
        """A repository load: registers `name` if new, loads it now (a failure's back-off does not apply); a loaded
        model is loaded again from its files in place, as Triton reloads: its entry stays, requests keep being
        answered by the weights they started with until the new ones are in (a runtime's load swaps them whole)."""
        reg = self.register(name)
        if reg.loading is not None:
            await asyncio.shield(reg.loading)
        reg.retry_at = 0.0
        if self.registry.loaded(name) is None:
            return await self._wait(reg)
        reg.estimate = None  # the files changed
        try:
            model = await self.registry.load(name)
        except Exception as exc:
            raise await self._failed(reg, exc) from exc
        measured = model.memory_bytes()
        if measured is not None and self.lru.resize(name, measured + OVERHEAD_BYTES) > 0:
            with contextlib.suppress(Overloaded):
                await self._make_room(name, 0)
        return self.registry.entry(name)

    async def unload(self, name: str) -> None:
        """A repository unload: the model stays registered but is not served until it is loaded again."""
        reg = self._regs.get(name)
        if reg is None:
            raise ModelNotFound(name)
        if reg.loading is not None:
            await asyncio.shield(reg.loading)
        await self._evict(reg)
        reg.state = State.UNLOADED
        path = self._locate(name)
        if path is not None and not path.exists():  # its files were removed: no longer in the repository
            del self._regs[name]

    async def preload(self) -> None:
        """Load the pinned models (at start)."""
        for reg in [r for r in self._regs.values() if r.pinned]:
            try:
                await self.load(reg.name)
            except ModelplaneError as exc:
                log.error("pinned model %s failed to load: %s", reg.name, exc.message)

    async def _wait(self, reg: Registration) -> Entry:
        task = reg.loading
        if task is None:
            task = reg.loading = asyncio.create_task(self._load(reg), name=f"load {reg.name}")
            task.add_done_callback(_retrieved)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.config.load_timeout_s)
        except TimeoutError:
            raise ModelNotReady(reg.name, f"it is still loading after {self.config.load_timeout_s:g} s") from None

    # --- loading and eviction -------------------------------------------------------------------------------
    async def _load(self, reg: Registration) -> Entry:
        if self._loads is None:
            self._loads = asyncio.Semaphore(self.config.max_loads)
        try:
            async with self._loads:
                reg.state = State.LOADING
                self._loading.add(reg.name)
                return await self._load_now(reg)
        finally:
            self._loading.discard(reg.name)
            reg.loading = None
            if reg.state is State.LOADING:  # it never started (no room): back to standby
                reg.state = State.STANDBY

    async def _load_now(self, reg: Registration) -> Entry:
        name = reg.name
        if reg.estimate is None:
            path = self._locate(name)
            reg.estimate = disk_bytes(path) if path is not None else 0
        charge = reg.estimate + OVERHEAD_BYTES
        await self._make_room(name, charge)
        self.lru.charge(name, charge, self._clock(), reg.pinned)  # the estimate is held while the model loads
        started = time.perf_counter()
        try:
            model = await self.registry.load(name)
        except Exception as exc:
            if isinstance(exc, ModelNotFound) and self._regs.get(name) is reg:  # a name the repository lacks
                self.lru.release(name)
                await self.registry.discard(name)
                del self._regs[name]
                raise
            raise await self._failed(reg, exc) from exc
        self.metrics.cache_load_seconds.labels(size_class(reg.estimate)).observe(time.perf_counter() - started)
        measured = model.memory_bytes()
        if measured is not None and self.lru.resize(name, measured + OVERHEAD_BYTES) > 0:
            try:  # larger than estimated: make the room now
                await self._make_room(name, 0)
            except Overloaded:
                log.warning("model %s is larger than its files; the cache is over capacity until it can evict", name)
        reg.state = State.READY
        reg.failures = 0
        reg.reason = ""
        return self.registry.entry(name)

    async def _failed(self, reg: Registration, exc: Exception) -> LoadFailed:
        """A load failed: nothing of it stays charged or registered; the failure is remembered with a back-off."""
        self.lru.release(reg.name)
        await self.registry.discard(reg.name)
        reg.failures += 1
        reg.retry_at = self._clock() + self.config.retry_s * 2 ** min(reg.failures - 1, 4)
        reg.state = State.FAILED
        reg.reason = exc.message if isinstance(exc, ModelplaneError) else f"{type(exc).__name__}: {exc}"
        self.metrics.cache_load_failures.inc()
        return LoadFailed(reg.name, f"loading it failed: {reg.reason}")

    async def _make_room(self, name: str, need: int) -> None:
        """Evict least-recently-used models until `need` more bytes fit (their accounting is released at once, so
        no concurrent load picks the same ones); 429 with Retry-After when only young models could go."""
        try:
            names = self.lru.victims(need, self._clock(), frozenset(self._loading))
        except NoRoom as exc:
            if exc.retry_after_s is None:
                raise ModelNotReady(name, str(exc)) from None
            raise Overloaded(f"cannot load model {name}: {exc}", exc.retry_after_s) from None
        victims = [self._regs[n] for n in names]
        for victim in victims:
            self.lru.release(victim.name)
            victim.state = State.STANDBY
        for victim in victims:
            await self._evict(victim)

    async def _evict(self, reg: Registration) -> None:
        self.lru.release(reg.name)
        if reg.state is State.READY:
            reg.state = State.STANDBY
        if not self.registry.has(reg.name):
            return
        await self.registry.unload(reg.name)
        self.metrics.cache_evictions.inc()
        self._trim.soon()

    # --- the repository index ------------------------------------------------------------------------------
    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        out = []
        for reg in self._regs.values():
            state = INDEX_STATE.get(reg.state, "UNAVAILABLE")
            if ready_only and state != "READY":
                continue
            reason = reg.state.value if state == "UNAVAILABLE" else ""
            if reg.state is State.FAILED:
                reason = f"failed: {reg.reason}"
            out.append({"name": reg.name, "version": "", "state": state, "reason": reason})
        return out


def cache_header() -> tuple[bytes, bytes]:
    """The response header saying whether this request's model was loaded for it."""
    return (b"x-model-cache", b"miss" if _MISSED.get() else b"hit")


def _retrieved(task: asyncio.Task[Entry]) -> None:
    if not task.cancelled():
        task.exception()  # every waiter may have timed out: the failure is in the registration, not a warning
