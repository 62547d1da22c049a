"""The offload policy decides inline vs thread from recorded call times (no clocks involved)."""

from __future__ import annotations

import pytest

from modelplane.server.pipeline import OffloadPolicy

FAST, SLOW = 0.0002, 3.0


def _feed(policy: OffloadPolicy, n: int, wall: float, cpu: float | None = None) -> None:
    for _ in range(n):
        policy.record(wall, wall if cpu is None else cpu, policy.inline)


def test_fast_model_goes_inline_after_a_window():
    p = OffloadPolicy(window=10)
    _feed(p, 9, FAST)
    assert not p.inline
    _feed(p, 1, FAST)
    assert p.inline


def test_sleeping_model_never_goes_inline_even_with_low_cpu():
    p = OffloadPolicy(window=10)
    _feed(p, 100, SLOW, cpu=0.0001)
    assert not p.inline


def test_gil_waits_on_a_thread_do_not_disqualify_cpu_cheap_calls():
    p = OffloadPolicy(window=10)
    _feed(p, 10, 0.004, cpu=FAST)  # 4 ms wall on a thread, mostly waiting for the GIL
    assert p.inline


def test_repeated_slow_inline_calls_send_it_back_and_double_the_window():
    p = OffloadPolicy(window=10)
    _feed(p, 10, FAST)
    p.record(0.01, 0.01, True)
    p.record(0.01, 0.01, True)
    assert p.inline  # two hiccups are tolerated (preemption shows up as wall time)
    p.record(0.01, 0.01, True)
    assert not p.inline and p.window == 20
    _feed(p, 19, FAST)
    assert not p.inline
    _feed(p, 1, FAST)
    assert p.inline


def test_a_very_slow_inline_call_keeps_it_on_threads_for_good():
    p = OffloadPolicy(window=10)
    _feed(p, 10, FAST)
    p.record(SLOW, SLOW, True)
    _feed(p, 1000, FAST)
    assert not p.inline


def test_occasional_small_overruns_inline_are_tolerated():
    p = OffloadPolicy(window=10)
    _feed(p, 10, FAST)
    for i in range(100):
        p.record(0.002 if i % 20 == 0 else FAST, 0.0, True)
    assert p.inline


def test_fixed_modes():
    assert OffloadPolicy("inline").inline
    t = OffloadPolicy("thread", window=1)
    _feed(t, 10, FAST)
    assert not t.inline
    with pytest.raises(ValueError):
        OffloadPolicy("sometimes")


def test_a_request_much_larger_than_the_ones_that_qualified_leaves_the_loop():
    """The report: after small calls moved a model inline, a 1M-row request blocked the loop for 3.4 s."""
    import asyncio
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from modelplane.model.base import Model
    from modelplane.server.metrics import Metrics
    from modelplane.server.pipeline import Pipeline

    where: list[bool] = []

    class Rows(Model):
        def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
            where.append(threading.current_thread() is threading.main_thread())
            return {"predictions": [0] * len(payload["instances"])}

    pipeline = Pipeline(Rows("rows"), ThreadPoolExecutor(2), Metrics())

    async def run() -> None:
        for _ in range(64):  # small, fast calls qualify the model for inline
            await pipeline("predict", {"instances": [[1.0] * 4]}, {})
        assert pipeline.policy.inline
        await pipeline("predict", {"instances": [[1.0] * 4]}, {})
        await pipeline("predict", {"instances": [[1.0] * 4] * 100_000}, {})
        await pipeline("predict", {"instances": [[1.0] * 4] * 3}, {})

    asyncio.run(run())
    assert where[-3:] == [True, False, True]  # small inline, huge on a worker thread, small inline again
