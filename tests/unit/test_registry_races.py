"""Load, unload and inference on one model are linearizable: requests in flight finish on the model they started
with, new ones get 404/503 with a message, a load that answers OK leaves the model ready, and a server is ready
only while the models it was started for are loaded."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelplane.model.base import Model
from modelplane.protocol.errors import ModelNotFound, ModelNotReady
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.dataplane import DataPlane
from modelplane.server.metrics import Metrics
from modelplane.server.registry import ModelRegistry


class Slow(Model):
    """Answers after 20 ms with its own generation number; unload() drops its state (as a runtime frees weights)."""

    generations = 0

    def load(self) -> bool:
        Slow.generations += 1
        self.state = {"generation": Slow.generations}
        self.ready = True
        return True

    def unload(self) -> None:
        self.state = None  # a request still running after this would fail: it must never happen

    async def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.02)
        value = np.array([self.state["generation"]], dtype=np.int64)
        return InferResponse(self.name, [Tensor.from_numpy("y", value)])


def _server() -> tuple[DataPlane, ModelRegistry]:
    registry = ModelRegistry(ThreadPoolExecutor(2), Metrics(), factory=Slow)
    registry.expect(["m"])
    return DataPlane(registry), registry


def _request() -> InferRequest:
    return InferRequest("m", [Tensor.from_numpy("x", np.zeros(1, dtype=np.float32))])


def test_unload_waits_for_requests_in_flight_and_refuses_new_ones():
    async def run() -> None:
        dp, _ = _server()
        await dp.load("m")
        inflight = [asyncio.create_task(dp.infer(_request(), {})) for _ in range(20)]
        await asyncio.sleep(0.005)  # all of them are inside the model now
        unload = asyncio.create_task(dp.unload("m"))
        await asyncio.sleep(0)
        with pytest.raises(ModelNotFound):
            await dp.infer(_request(), {})
        results = await asyncio.gather(*inflight)
        await unload
        assert [int(r.outputs[0].data[0]) for r, _ in results] == [1] * 20
        assert not dp.ready()

    asyncio.run(run())


def test_a_request_that_looked_the_model_up_before_the_unload_gets_503():
    async def run() -> None:
        dp, registry = _server()
        await dp.load("m")
        entry = registry.ready_entry("m")  # as a transport does before reading the body
        await dp.unload("m")
        with pytest.raises(ModelNotReady, match="being unloaded"):
            await dp.infer(_request(), {}, entry)

    asyncio.run(run())


@pytest.mark.parametrize("order", ["unload-then-load", "load-then-unload"])
def test_concurrent_load_and_unload_end_in_the_state_of_the_last_call(order):
    async def run() -> None:
        dp, _ = _server()
        await dp.load("m")
        for _ in range(100):
            calls = [dp.unload("m"), dp.load("m")] if order == "unload-then-load" else [dp.load("m"), dp.unload("m")]
            await asyncio.gather(*calls)
            if order == "unload-then-load":
                assert dp.ready() and dp.model_ready("m")
                response, _ = await dp.infer(_request(), {})
                assert response.outputs[0].data[0] >= 1
            else:
                assert not dp.ready()
                with pytest.raises(ModelNotFound):
                    await dp.infer(_request(), {})
                await dp.load("m")

    asyncio.run(run())


def test_a_server_with_nothing_loaded_is_not_ready():
    async def run() -> None:
        dp, _ = _server()
        assert not dp.ready()  # started for "m", which is not loaded yet
        await dp.load("m")
        assert dp.ready()
        await dp.unload("m")
        assert not dp.ready()

    asyncio.run(run())
