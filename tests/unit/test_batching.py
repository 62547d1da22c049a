"""Batcher, batch kinds and the cost model, driven directly on an event loop (no server, no clock assertions)."""

from __future__ import annotations

import asyncio
import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelplane.model.options import Batching
from modelplane.protocol.errors import InferenceError
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.batch_kinds import V1, V2
from modelplane.server.batching import Batcher, CostModel
from modelplane.server.metrics import Metrics


def v2(rows: np.ndarray, name: str = "x", rid: str | None = None) -> InferRequest:
    return InferRequest("m", [Tensor.from_numpy(name, rows)], id=rid)


class Recorder:
    """A model call that records batch sizes and waits for a gate the test opens."""

    def __init__(self, fail_if=None) -> None:
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.fail_if = fail_if

    async def __call__(self, payload, headers):
        await self.gate.wait()
        if isinstance(payload, InferRequest):
            data = payload.inputs[0].data
            self.calls.append(len(data))
            if self.fail_if is not None and self.fail_if(data):
                raise InferenceError("bad batch")
            return InferResponse("m", [Tensor.from_numpy("y", data * 10)]), {"x-batch": str(len(data))}
        self.calls.append(len(payload["instances"]))
        return {"predictions": [r * 10 for r in payload["instances"]]}, {}


def on_loop(fn):
    """Run an async test on a fresh event loop."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(fn(*args, **kwargs))

    return wrapper


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_cost_model_recovers_fixed_and_per_row_cost():
    cost = CostModel()
    for n in (1, 4, 8, 16, 32) * 20:
        cost.record(n, 0.002 + 0.0001 * n)
    assert cost.fixed == pytest.approx(0.002, rel=1e-6)
    assert cost.per_row == pytest.approx(0.0001, rel=1e-6)


def test_cost_model_with_one_batch_size_has_no_slope():
    cost = CostModel()
    for _ in range(10):
        cost.record(1, 0.003)
    assert cost.per_row == 0.0 and cost.fixed == pytest.approx(0.003)


@on_loop
async def test_a_lone_request_is_dispatched_at_once():
    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=32, max_latency_ms=60_000), run, Metrics())
    task = asyncio.create_task(batcher.submit(V2, v2(np.ones((1, 3))), {}))
    await settle()
    assert batcher.busy and not batcher.queue  # not held for the 60 s window
    run.gate.set()
    response, _ = await task
    assert run.calls == [1] and response.outputs[0].data.tolist() == [[10, 10, 10]]


@on_loop
async def test_requests_queued_while_busy_form_one_batch_and_each_caller_gets_its_rows():
    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=32), run, Metrics())
    first = asyncio.create_task(batcher.submit(V2, v2(np.zeros((1, 2)), rid="first"), {}))
    await settle()
    rows = [np.full((k, 2), k, dtype=np.int64) for k in (1, 2, 3, 4)]
    rest = [asyncio.create_task(batcher.submit(V2, v2(r, rid=f"r{i}"), {})) for i, r in enumerate(rows)]
    await settle()
    assert len(batcher.queue) == 4
    run.gate.set()
    await first
    results = await asyncio.gather(*rest)
    assert run.calls == [1, 10]
    for i, (r, (response, headers)) in enumerate(zip(rows, results, strict=True)):
        assert response.id == f"r{i}" and response.outputs[0].data.tolist() == (r * 10).tolist()
        assert headers == {"x-batch": "10"}


@on_loop
async def test_batches_never_exceed_max_size_and_requests_are_never_split():
    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=5), run, Metrics())
    blocker = asyncio.create_task(batcher.submit(V2, v2(np.zeros((1, 1))), {}))
    await settle()
    sizes = [3, 3, 2, 4, 1]
    tasks = [asyncio.create_task(batcher.submit(V2, v2(np.ones((k, 1))), {})) for k in sizes]
    big = asyncio.create_task(batcher.submit(V2, v2(np.ones((7, 1))), {}))  # larger than a batch: runs alone
    await settle()
    run.gate.set()
    await asyncio.gather(blocker, big, *tasks)
    assert all(c <= 5 for c in run.calls if c != 7) and 7 in run.calls
    assert sum(run.calls) == 1 + sum(sizes) + 7


@on_loop
async def test_incompatible_shapes_go_to_different_batches():
    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=32), run, Metrics())
    blocker = asyncio.create_task(batcher.submit(V2, v2(np.zeros((1, 2))), {}))
    await settle()
    a = asyncio.create_task(batcher.submit(V2, v2(np.ones((2, 2))), {}))
    b = asyncio.create_task(batcher.submit(V2, v2(np.ones((2, 3))), {}))
    c = asyncio.create_task(batcher.submit(V2, v2(np.ones((1, 2))), {}))
    await settle()
    run.gate.set()
    (ra, _), (rb, _), (rc, _) = await asyncio.gather(a, b, c)
    await blocker
    assert sorted(run.calls) == [1, 2, 3]  # blocker, the (·, 3) request alone, a + c together
    assert rb.outputs[0].shape == [2, 3] and ra.outputs[0].shape == [2, 2] and rc.outputs[0].shape == [1, 2]


@on_loop
async def test_an_error_reaches_only_the_callers_of_that_batch():
    run = Recorder(fail_if=lambda data: (data == -1).any())
    batcher = Batcher("m", Batching(max_batch_size=32), run, Metrics())
    good_first = asyncio.create_task(batcher.submit(V2, v2(np.zeros((1, 1))), {}))
    await settle()
    poisoned = [asyncio.create_task(batcher.submit(V2, v2(np.array([[v]])), {})) for v in (1, -1, 2)]
    await settle()
    run.gate.set()
    assert (await good_first)[0].outputs[0].data.tolist() == [[0]]
    outcomes = await asyncio.gather(*poisoned, return_exceptions=True)
    assert all(isinstance(o, InferenceError) for o in outcomes)
    after = await batcher.submit(V2, v2(np.array([[3]])), {})  # the batcher keeps working
    assert after[0].outputs[0].data.tolist() == [[30]]


@on_loop
async def test_v1_instances_are_batched_and_split():
    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=32), run, Metrics())
    blocker = asyncio.create_task(batcher.submit(V1, {"instances": [0]}, {}))
    await settle()
    tasks = [asyncio.create_task(batcher.submit(V1, {"instances": [i, i]}, {})) for i in (1, 2, 3)]
    await settle()
    run.gate.set()
    await blocker
    results = [r for r, _ in await asyncio.gather(*tasks)]
    assert results == [{"predictions": [10, 10]}, {"predictions": [20, 20]}, {"predictions": [30, 30]}]
    assert run.calls == [1, 6]


def test_v1_split_refuses_a_prediction_count_mismatch():
    with pytest.raises(InferenceError, match="2 predictions for 3 instances"):
        V1.split({"predictions": [1, 2]}, {"instances": [1, 2, 3]}, [{"instances": [1]}, {"instances": [2, 3]}], [1, 2])


def test_unbatchable_payloads_are_recognised():
    assert V1.rows({"instances": [1], "parameters": {}}) is None
    assert V1.rows(b"raw") is None
    mismatched = InferRequest("m", [Tensor.from_numpy("a", np.ones((2, 1))), Tensor.from_numpy("b", np.ones((3, 1)))])
    assert V2.rows(mismatched) is None
    assert V2.rows(InferRequest("m", [Tensor.from_numpy("s", np.float32(1.0))])) is None


@given(st.lists(st.integers(1, 6), min_size=1, max_size=8), st.integers(1, 3))
def test_v2_combine_then_split_returns_each_request_its_own_rows(counts, width):
    requests = [v2(np.arange(n * width).reshape(n, width) + 100 * i, rid=str(i)) for i, n in enumerate(counts)]
    combined = V2.combine(requests)
    assert combined.inputs[0].shape == [sum(counts), width]
    result = InferResponse("m", [Tensor.from_numpy("y", combined.inputs[0].data + 1)])
    parts = V2.split(result, combined, requests, counts)
    for request, part in zip(requests, parts, strict=True):
        assert part.id == request.id
        assert np.array_equal(part.outputs[0].data, request.inputs[0].data + 1)
        assert part.outputs[0].shape == request.inputs[0].shape


@on_loop
async def test_under_a_high_arrival_rate_a_free_model_waits_for_the_burst_then_runs_it_as_one_batch():
    run = Recorder()
    run.gate.set()
    batcher = Batcher("m", Batching(max_batch_size=32, max_latency_ms=50), run, Metrics())
    for _ in range(10):
        batcher.cost.record(1, 0.02)  # a call costs 20 ms whatever its size
    batcher._gap = 0.001  # measured: a request every millisecond, 20 per call
    first = asyncio.create_task(batcher.submit(V2, v2(np.ones((1, 1))), {}))
    await settle()
    assert not batcher.busy and len(batcher.queue) == 1  # held for companions, not dispatched
    second = asyncio.create_task(batcher.submit(V2, v2(np.ones((1, 1)) * 2), {}))
    await settle()
    assert not batcher.busy and len(batcher.queue) == 2
    (a, _), (b, _) = await asyncio.gather(first, second)  # the pause in arrivals ends the hold
    assert run.calls == [2] and a.outputs[0].data.tolist() == [[10]] and b.outputs[0].data.tolist() == [[20]]


@on_loop
async def test_a_batched_request_past_its_timeout_is_answered_504_and_skipped():
    from modelplane.protocol.errors import DeadlineExceeded

    run = Recorder()
    batcher = Batcher("m", Batching(max_batch_size=32, timeout_s=0.05), run, Metrics())
    blocker = asyncio.create_task(batcher.submit(V2, v2(np.ones((1, 1))), {}))
    await settle()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(V2, v2(np.ones((1, 1))), {})
    run.gate.set()
    with pytest.raises(DeadlineExceeded):  # the blocker itself waited past its timeout too
        await blocker
    after = await batcher.submit(V2, v2(np.ones((1, 1)) * 3), {})
    assert after[0].outputs[0].data.tolist() == [[30]] and run.calls == [1, 1]  # the expired one never ran
