"""The revision pool: containerConcurrency breaker, bounded queue, and holding requests at zero (in-memory replicas)."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.backends.local.activator import Endpoint, Gone, Meter, QueueFull, RevisionPool

A, B = Endpoint("http://a", "a:1"), Endpoint("http://b", "b:1")


class Replicas:
    def __init__(self, *ready: Endpoint) -> None:
        self.up = list(ready)

    def ready(self, revision: str) -> list[Endpoint]:
        return list(self.up)

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        return []

    def mark_ready(self, revision: str, endpoint: Endpoint) -> None:
        self.up.append(endpoint)


def test_container_concurrency_is_a_hard_limit_per_replica() -> None:
    async def main() -> int:
        pool = RevisionPool("r", Replicas(A, B), lambda r, n: None, concurrency=1)
        busy: dict[Endpoint, int] = {A: 0, B: 0}
        peak = 0

        async def one() -> None:
            nonlocal peak
            endpoint = await pool.acquire()
            assert endpoint is not None
            busy[endpoint] += 1
            peak = max(peak, *busy.values())
            await asyncio.sleep(0.002)
            busy[endpoint] -= 1
            pool.release(endpoint)

        await asyncio.gather(*(one() for _ in range(40)))
        assert pool.inflight == {} and not pool.waiters
        return peak

    assert asyncio.run(main()) == 1


def test_the_queue_is_bounded() -> None:
    async def main() -> None:
        pool = RevisionPool("r", Replicas(A), lambda r, n: None, concurrency=1, queue_depth=2)
        first = await pool.acquire()
        waiting = [asyncio.create_task(pool.acquire()) for _ in range(2)]
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await pool.acquire()
        assert first is not None
        pool.release(first)
        got = await waiting[0]
        assert got == A
        pool.release(got)
        pool.release(await waiting[1])

    asyncio.run(main())


def test_requests_at_zero_are_held_activate_and_go_to_the_first_ready_replica() -> None:
    async def main() -> None:
        replicas = Replicas()
        asked: list[int] = []
        pool = RevisionPool("r", replicas, lambda r, n: asked.append(n))
        held = [asyncio.create_task(pool.acquire()) for _ in range(5)]
        await asyncio.sleep(0.02)
        assert asked and max(asked) == 5 and pool.held == 5
        assert not any(t.done() for t in held)
        replicas.up.append(A)  # a replica became ready
        assert await asyncio.gather(*held) == [A] * 5
        assert pool.held == 0

    asyncio.run(main())


def test_failed_replicas_are_excluded_then_none_is_left() -> None:
    async def main() -> None:
        pool = RevisionPool("r", Replicas(A, B), lambda r, n: None)
        first = await pool.acquire()
        assert first is not None
        pool.release(first)
        other = await pool.acquire((first,))
        assert other is not None and other != first
        pool.release(other)
        assert await pool.acquire((A, B)) is None

    asyncio.run(main())


def test_meter_is_time_weighted() -> None:
    clock = [0.0]
    m = Meter(lambda: clock[0])
    m.begin()
    m.begin()
    clock[0] = 1.0
    m.end()
    clock[0] = 2.0
    concurrency, rps = m.collect()
    assert (concurrency, rps) == (1.5, 1.0)  # two for 1 s, one for 1 s; two arrivals in 2 s
    clock[0] = 3.0
    assert m.collect() == (1.0, 0.0)


def test_requests_held_for_a_removed_revision_give_up() -> None:
    async def main() -> None:
        pool = RevisionPool("r", Replicas(), lambda r, n: None)
        held = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        pool.closed = True  # what Gateway.forget does when the revision is deleted
        with pytest.raises(Gone):
            await asyncio.wait_for(held, 1)

    asyncio.run(main())


C, D = Endpoint("http://c", "c:1"), Endpoint("http://d", "d:1")


def test_requests_sharing_a_prefix_go_to_one_replica_until_it_is_too_busy() -> None:
    async def main() -> None:
        pool = RevisionPool("r", Replicas(A, B, C, D), lambda r, n: None)
        homes = {key: await pool.acquire(affinity=key) for key in range(64)}
        for endpoint in homes.values():
            assert endpoint is not None
            pool.release(endpoint)
        assert len(set(homes.values())) == 4  # different prefixes spread over the replicas
        again = await pool.acquire(affinity=7)
        assert again == homes[7]  # the same prefix finds the same replica
        held = [again]
        for _ in range(12):  # one hot prefix: bounded load makes it spill instead of piling onto one replica
            endpoint = await pool.acquire(affinity=7)
            assert endpoint is not None
            held.append(endpoint)
        loads = {e: held.count(e) for e in set(held)}
        assert len(loads) > 1 and max(loads.values()) <= 5  # 1.25 x the mean of 13 over 4 replicas, rounded up
        for endpoint in held:
            pool.release(endpoint)
        assert pool.inflight == {}

    asyncio.run(main())


def test_affinity_respects_container_concurrency() -> None:
    async def main() -> None:
        pool = RevisionPool("r", Replicas(A, B), lambda r, n: None, concurrency=1)
        first = await pool.acquire(affinity=3)
        second = await pool.acquire(affinity=3)
        assert {first, second} == {A, B}
        third = asyncio.create_task(pool.acquire(affinity=3))
        await asyncio.sleep(0.01)
        assert not third.done()  # both replicas are at their one slot: it waits
        assert first is not None
        pool.release(first)
        assert await third == first

    asyncio.run(main())
