"""Admission: concurrency slots, the bounded queue, early deadline rejection (driven directly on an event loop)."""

from __future__ import annotations

import asyncio
import time

import pytest

from modelplane.model.options import Limits
from modelplane.protocol.errors import DeadlineExceeded, Overloaded
from modelplane.server.admission import Admission
from modelplane.server.metrics import Metrics


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_beyond_the_queue_requests_are_refused_with_retry_after():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=1), Metrics())
        running = await adm.acquire()
        queued = asyncio.create_task(adm.acquire())
        await _settle()
        assert adm.running == 1 and adm.queued == 1
        with pytest.raises(Overloaded) as refused:
            await adm.acquire()
        assert refused.value.status.http == 429 and int(refused.value.headers["retry-after"]) >= 1
        adm.release(running)  # the slot goes to the queued request, in order
        granted = await queued
        assert adm.running == 1 and adm.queued == 0
        adm.release(granted)
        assert adm.running == 0 and adm.rejected == 1

    asyncio.run(scenario())


def test_waiters_are_served_first_in_first_out():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=10), Metrics())
        order: list[int] = []
        first = await adm.acquire()

        async def client(i: int) -> None:
            granted = await adm.acquire()
            order.append(i)
            adm.release(granted)

        tasks = []
        for i in range(5):
            tasks.append(asyncio.create_task(client(i)))
            await _settle()
        adm.release(first)
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3, 4] and adm.running == 0

    asyncio.run(scenario())


def test_a_deadline_that_cannot_be_met_is_refused_before_the_model_runs():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=10), Metrics())
        adm.service_s = 0.5  # measured: half a second per request
        slot = await adm.acquire()
        with pytest.raises(DeadlineExceeded, match="cannot answer within"):
            await adm.acquire(deadline=time.monotonic() + 0.2)
        assert adm.queued == 0  # never queued
        adm.release(slot)

    asyncio.run(scenario())


def test_a_request_whose_deadline_passes_in_the_queue_leaves_it():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=10), Metrics())
        slot = await adm.acquire()
        with pytest.raises(DeadlineExceeded, match="passed while queued"):
            await adm.acquire(deadline=time.monotonic() + 0.01)
        assert adm.queued == 0
        adm.release(slot)
        assert adm.running == 0

    asyncio.run(scenario())


def test_a_cancelled_waiter_does_not_leak_its_slot():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=10), Metrics())
        slot = await adm.acquire()
        waiter = asyncio.create_task(adm.acquire())
        await _settle()
        waiter.cancel()
        await _settle()
        adm.release(slot)
        assert adm.running == 0 and adm.queued == 0
        again = await adm.acquire()
        assert adm.running == 1
        adm.release(again)

    asyncio.run(scenario())


def test_precheck_refuses_before_the_body_is_read_only_when_acquire_would():
    async def scenario():
        adm = Admission("m", Limits(max_concurrency=1, max_queue=1), Metrics())
        adm.precheck()  # free: passes
        slot = await adm.acquire()
        adm.precheck()  # running, but the queue has room: passes
        waiter = asyncio.create_task(adm.acquire())
        await _settle()
        with pytest.raises(Overloaded):
            adm.precheck()
        adm.release(slot)
        adm.release(await waiter)
        adm.precheck()

    asyncio.run(scenario())


def test_by_default_work_is_bounded_and_the_next_request_gets_429_at_once():
    """Issue 13: without settings, an overloaded model queued without bound; the defaults now bound it."""

    async def scenario():
        adm = Admission("m", Limits(), Metrics())
        limits = Limits()
        running = [await adm.acquire() for _ in range(limits.max_concurrency)]
        queued = [asyncio.create_task(adm.acquire()) for _ in range(limits.max_queue)]
        await _settle()
        assert adm.running == limits.max_concurrency and adm.queued == limits.max_queue
        with pytest.raises(Overloaded):
            adm.precheck()  # before the body is read
        with pytest.raises(Overloaded):
            await adm.acquire()
        for granted in running:
            adm.release(granted)
        for task in queued:
            adm.release(await task)
        assert adm.running == 0 and adm.queued == 0

    asyncio.run(scenario())
