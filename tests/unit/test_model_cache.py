"""The byte-capacity LRU and the model cache on a fake clock: standby, one load per model however many wait,
eviction order, the churn guard, pinning, failure back-off, repository unload, states and metrics."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modelplane.model.base import Model
from modelplane.protocol.errors import ModelNotFound, ModelNotReady, Overloaded
from modelplane.server.dataplane import DataPlane
from modelplane.server.lru import ByteLRU, NoRoom
from modelplane.server.metrics import Metrics
from modelplane.server.multimodel import OVERHEAD_BYTES, LoadFailed, ModelCache, State
from modelplane.server.registry import ModelRegistry
from modelplane.server.settings import ModelCacheConfig

KB = 1024


def sync(fn: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(fn)
    def run() -> None:
        asyncio.run(fn())

    return run


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the LRU alone ------------------------------------------------------------------------------------------
def test_lru_evicts_least_recently_used_first_and_touch_reorders() -> None:
    lru = ByteLRU(300)
    for i, name in enumerate("abc"):
        lru.charge(name, 100, now=i)
    lru.touch("a", now=10)
    assert lru.victims(100, now=20) == ["b"]
    assert lru.victims(150, now=20) == ["b", "c"]
    assert lru.victims(0, now=20) == []


def test_lru_churn_guard_and_pinned() -> None:
    lru = ByteLRU(300, min_age_s=5)
    lru.charge("pinned", 100, now=0, pinned=True)
    lru.charge("old", 100, now=0)
    lru.charge("young", 100, now=8)
    assert lru.victims(100, now=10) == ["old"]  # pinned is never a candidate; young is inside the guard
    with pytest.raises(NoRoom) as no_room:
        lru.victims(200, now=10)
    assert no_room.value.retry_after_s == pytest.approx(3)
    with pytest.raises(NoRoom) as too_big:
        lru.victims(250, now=100)
    assert too_big.value.retry_after_s is None  # larger than all unpinned room: retrying cannot help


def test_lru_resize_and_release_keep_the_totals() -> None:
    lru = ByteLRU(1000)
    lru.charge("a", 100, now=0, pinned=True)
    lru.charge("b", 100, now=0)
    assert lru.resize("a", 250) == 150 and lru.resize("b", 50) == -50
    assert (lru.used, lru.pinned_bytes) == (300, 250)
    assert lru.release("a") == 250 and lru.release("a") == 0
    assert (lru.used, lru.pinned_bytes, len(lru)) == (50, 0, 1)


# --- the cache over a real registry with fake models ---------------------------------------------------------
class Sized(Model):
    """A model whose measured size and load outcome the test chooses; counts its loads and unloads."""

    sizes: dict[str, int] = {}
    broken: set[str] = set()
    loads: list[str] = []
    unloads: list[str] = []
    gate: asyncio.Event | None = None

    async def load(self) -> bool:
        Sized.loads.append(self.name)
        if Sized.gate is not None:
            await Sized.gate.wait()
        if self.name in Sized.broken:
            raise RuntimeError("corrupt weights")
        self.ready = True
        return True

    def unload(self) -> None:
        Sized.unloads.append(self.name)
        self.ready = False

    def memory_bytes(self) -> int | None:
        return Sized.sizes.get(self.name)

    def predict(self, payload: Any, headers: Any = None) -> Any:
        return {"predictions": [self.name]}


@pytest.fixture(autouse=True)
def _reset() -> None:
    Sized.sizes, Sized.broken, Sized.loads, Sized.unloads, Sized.gate = {}, set(), [], [], None


def make(capacity: int, names: str = "abcd", **config: Any) -> tuple[ModelCache, DataPlane, Clock]:
    def factory(name: str) -> Model:
        if name not in names:
            raise ModelNotFound(name)
        return Sized(name)

    metrics = Metrics()
    registry = ModelRegistry(ThreadPoolExecutor(1), metrics, factory=factory)
    clock = Clock()
    cache = ModelCache(registry, ModelCacheConfig(capacity, **config), metrics, clock=clock)
    for name in names:
        cache.register(name)
    return cache, DataPlane(registry, metrics=metrics, cache=cache), clock


def charge(kb: int) -> int:
    return kb * KB + OVERHEAD_BYTES


@sync
async def test_standby_models_load_on_first_request_and_evict_lru() -> None:
    cache, dp, clock = make(2 * charge(10), min_age_s=0)
    Sized.sizes = {n: 10 * KB for n in "abcd"}
    assert cache.state("a") is State.STANDBY and not dp.model_ready("a")
    assert [e["state"] for e in dp.index()] == ["UNAVAILABLE"] * 4
    for name in "ab":
        clock.now += 1
        await dp.admit(name)
    clock.now += 1
    await dp.admit("a")  # a hit: "a" is now the most recently used
    await dp.admit("c")  # needs room: "b" goes
    assert Sized.unloads == ["b"] and cache.state("b") is State.STANDBY and dp.model_ready("c")
    assert Sized.loads == ["a", "b", "c"]
    assert cache.lru.used == 2 * charge(10)
    text = dp.metrics.exposition()[0].decode()
    assert "modelplane_model_cache_hits_total 1.0" in text
    assert "modelplane_model_cache_misses_total 3.0" in text
    assert "modelplane_model_cache_evictions_total 1.0" in text
    assert f"modelplane_model_cache_loaded_bytes {float(2 * charge(10))}" in text
    assert 'modelplane_model_cache_load_seconds_count{size="small"} 3.0' in text  # 3 loads of small files


@sync
async def test_concurrent_requests_share_one_load() -> None:
    cache, dp, _ = make(10 * charge(10))
    Sized.gate = asyncio.Event()
    waiters = [asyncio.create_task(dp.admit("a")) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert cache.state("a") is State.LOADING and dp.index()[0]["state"] == "LOADING"
    Sized.gate.set()
    entries = await asyncio.gather(*waiters)
    assert Sized.loads == ["a"] and len({id(e) for e in entries}) == 1


@sync
async def test_loads_are_bounded_and_a_waiter_times_out() -> None:
    cache, dp, _ = make(10 * charge(10), max_loads=2, load_timeout_s=0.05)
    Sized.gate = asyncio.Event()
    tasks = [asyncio.create_task(dp.admit(n)) for n in "abc"]
    await asyncio.sleep(0.01)
    assert Sized.loads == ["a", "b"] and cache.state("c") is State.STANDBY  # the third waits for a load slot
    for t in tasks:
        with pytest.raises(ModelNotReady, match="still loading"):
            await t
    Sized.gate.set()
    await dp.admit("c")  # the load went on without its waiters
    assert Sized.loads == ["a", "b", "c"]


@sync
async def test_churn_guard_refuses_with_retry_after_then_evicts_once_old_enough() -> None:
    cache, dp, clock = make(charge(10), min_age_s=30)
    await dp.admit("a")
    clock.now += 10
    with pytest.raises(Overloaded) as refused:
        await dp.admit("b")
    assert refused.value.headers["retry-after"] == "20" and cache.state("b") is State.STANDBY
    clock.now += 21
    await dp.admit("b")
    assert Sized.unloads == ["a"]


@sync
async def test_pinned_models_are_never_evicted() -> None:
    cache, dp, clock = make(2 * charge(10), min_age_s=0, pinned=("a",))
    Sized.sizes = {n: 10 * KB for n in "abcd"}
    await cache.preload()
    assert Sized.loads == ["a"]
    for name in "bcd":
        clock.now += 1
        await dp.admit(name)
    assert "a" not in Sized.unloads and Sized.unloads == ["b", "c"]


@sync
async def test_failed_load_is_remembered_and_retried_after_back_off() -> None:
    cache, dp, clock = make(10 * charge(10), retry_s=30)
    Sized.broken = {"a"}
    with pytest.raises(ModelNotReady, match="corrupt weights"):
        await dp.admit("a")
    assert cache.lru.used == 0 and not dp.registry.has("a")
    with pytest.raises(ModelNotReady, match="tried again in 30 s"):
        await dp.admit("a")
    assert Sized.loads == ["a"] and dp.index()[0]["reason"].startswith("failed: ")
    clock.now += 31
    with pytest.raises(ModelNotReady):
        await dp.admit("a")  # tried again, fails again: the back-off doubles
    clock.now += 31
    with pytest.raises(ModelNotReady, match="tried again in 29 s"):
        await dp.admit("a")
    Sized.broken = set()
    await dp.load("a")  # a repository load does not wait for the back-off
    assert cache.state("a") is State.READY


@sync
async def test_measured_size_replaces_the_estimate_and_makes_room() -> None:
    cache, dp, clock = make(3 * charge(10), min_age_s=0)
    Sized.sizes = {"a": 10 * KB, "b": 10 * KB, "c": 20 * KB}
    for name in "abc":
        clock.now += 1
        await dp.admit(name)  # "c" is charged its overhead only until it reports 20 KB, then "a" must go
    assert Sized.unloads == ["a"] and cache.lru.used <= cache.lru.capacity


@sync
async def test_repository_unload_keeps_the_registration_but_stops_serving() -> None:
    cache, dp, _ = make(10 * charge(10))
    await dp.admit("a")
    await dp.unload("a")
    assert cache.state("a") is State.UNLOADED and cache.lru.used == 0
    with pytest.raises(ModelNotReady, match="load it to serve it again"):
        await dp.admit("a")
    await dp.load("a")
    assert dp.model_ready("a")


@sync
async def test_unknown_names_are_404_and_leave_nothing_behind() -> None:
    cache, dp, _ = make(10 * charge(10))
    with pytest.raises(ModelNotFound):
        await dp.admit("nope")
    with pytest.raises(ModelNotFound):
        await dp.load("zzz")  # a repository load of a name the repository lacks
    assert len(cache) == 4 and not cache.known("zzz")


@sync
async def test_metrics_series_of_an_evicted_model_are_dropped() -> None:
    _, dp, clock = make(charge(10), min_age_s=0)
    for name in "ab":
        clock.now += 1
        entry = await dp.admit(name)
        await dp._call(entry, "v1", "predict", {"instances": [[1]]}, {}, None)  # type: ignore[arg-type]
        dp.answered(name, "rest", "200", None, {}, b"")
    text = dp.metrics.exposition()[0].decode()
    assert 'model_name="b"' in text and 'model_name="a"' not in text


@sync
async def test_a_failed_load_says_so_in_a_header_a_gateway_can_act_on() -> None:
    _, dp, _ = make(10 * charge(10))
    Sized.broken = {"a"}
    for _ in range(2):  # the load itself, then a request inside the back-off
        with pytest.raises(LoadFailed) as failed:
            await dp.admit("a")
        assert failed.value.headers == {"x-model-cache": "failed"} and failed.value.status.http == 503


def test_without_per_model_metrics_every_model_counts_under_one_series() -> None:
    metrics = Metrics(per_model=False)
    for name in ("a", "b", "c"):
        metrics.count(name, "rest", "200")
        metrics.observe("predict", name, 0.001)
        metrics.forget(name)  # nothing per model to drop
    text = metrics.exposition()[0].decode()
    assert 'modelplane_requests_total{model_name="",protocol="rest",status="200"} 3.0' in text
    assert 'model_name="a"' not in text and 'request_predict_seconds_count{model_name=""} 3.0' in text


@sync
async def test_a_repository_load_of_a_loaded_model_reloads_it_in_place_while_it_keeps_answering() -> None:
    cache, dp, _ = make(10 * charge(10))
    entry = await dp.admit("a")
    Sized.gate = asyncio.Event()
    reload = asyncio.create_task(dp.load("a"))
    await asyncio.sleep(0.01)
    assert Sized.loads == ["a", "a"]  # the second load is under way
    assert await dp.admit("a") is entry  # and the model still answers, from the same entry
    Sized.gate.set()
    await reload
    assert Sized.unloads == [] and cache.state("a") is State.READY and await dp.admit("a") is entry


def test_load_times_are_labelled_by_the_size_of_the_models_files() -> None:
    from modelplane.server.multimodel import size_class

    sizes = (0, 16 * 1024, 16 * 1024 + 1, 256 * 1024, 256 * 1024 + 1, 3 * 2**20)
    assert [size_class(n) for n in sizes] == ["small", "small", "medium", "medium", "large", "large"]
