"""A 3-second sync predict must not block health checks or other models (sync user code runs off the loop)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from support import server as srv


@pytest.fixture(scope="module")
def slow_server(logs):
    server = srv.start(["Slow:slow", "Echo:echo"], logs, module="support.launch", env={"SLOW_SECONDS": "3"})
    yield server
    server.stop()


def test_slow_sync_predict_does_not_block_the_server(slow_server):
    async def scenario() -> tuple[list[str], dict]:
        order: list[str] = []
        async with httpx.AsyncClient(base_url=slow_server.http, timeout=30) as client:

            async def slow() -> dict:
                r = await client.post("/v1/models/slow:predict", json={"instances": [1]})
                order.append("slow")
                return r.json()

            async def quick() -> None:
                await asyncio.sleep(0.3)  # let the slow request reach the model first
                for _ in range(5):
                    assert (await client.get("/v2/health/live")).status_code == 200
                    r = await client.post("/v1/models/echo:predict", json={"instances": [[1]]})
                    assert r.json() == {"predictions": [[1]]}
                order.append("quick")

            slow_result, _ = await asyncio.gather(slow(), quick())
        return order, slow_result

    order, slow_result = asyncio.run(scenario())
    # ordering, not timing: everything quick finished while the slow predict was still running
    assert order == ["quick", "slow"]
    assert slow_result == {"predictions": ["slow"]}
