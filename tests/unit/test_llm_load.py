"""The local autoscaler's LLM signals: the engines' gauges parsed from each ready replica's Prometheus text and
summed per revision, at most once a second, a replica that does not answer counting as zero (in-memory replicas and
upstreams; no sockets)."""

from __future__ import annotations

import asyncio

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.llm_load import LlmLoad, total
from modelplane.backends.local.upstream import UpstreamError

TEXT = b"""# HELP modelplane_llm_running_sequences Sequences being decoded
# TYPE modelplane_llm_running_sequences gauge
modelplane_llm_running_sequences{model_name="a"} 3.0
modelplane_llm_running_sequences{model_name="b"} 1.0
modelplane_llm_waiting_sequences{model_name="a"} 2.0
modelplane_llm_waiting_tokens{model_name="a"} 640.0
modelplane_llm_running_sequences_extra{model_name="a"} 99.0
"""


def test_gauges_are_summed_over_models() -> None:
    assert total(TEXT, "sequences") == 6.0
    assert total(TEXT, "queued-tokens") == 640.0
    assert total(b"garbage\nmodelplane_llm_waiting_tokens{} x\n", "queued-tokens") == 0.0


class Replicas:
    def __init__(self, ready: dict[str, list[Endpoint]]) -> None:
        self.up = ready

    def ready(self, revision: str) -> list[Endpoint]:
        return self.up.get(revision, [])

    def starting(self, revision: str) -> list[tuple[Endpoint, str]]:
        return []


class Upstream:
    def __init__(self, body: bytes | None) -> None:
        self.body = body
        self.asked = 0

    async def request(self, method: str, target: str, headers: list, body: bytes) -> tuple[int, list, bytes]:
        self.asked += 1
        if self.body is None:
            raise UpstreamError("down")
        return 200, [], self.body


def test_revisions_scaling_on_llm_signals_are_read_from_every_ready_replica() -> None:
    a, b, c = Endpoint("http://a", "a:1"), Endpoint("http://b", "b:1"), Endpoint("http://c", "c:1")
    upstreams = {"http://a": Upstream(TEXT), "http://b": Upstream(TEXT), "http://c": Upstream(None)}
    now = [100.0]
    load = LlmLoad(Replicas({"r1": [a, b, c], "r2": [a]}), upstreams.__getitem__, lambda: now[0])
    metrics = {"r1": "sequences", "r2": "queued-tokens", "r3": "concurrency"}
    assert asyncio.run(load.read(metrics)) == {"r1": 12.0, "r2": 640.0}  # c is down: zero
    upstreams["http://a"].body = b'modelplane_llm_running_sequences{model_name="a"} 1.0\n'
    now[0] += 0.5
    assert asyncio.run(load.read(metrics))["r1"] == 12.0  # not read again within the second
    now[0] += 0.6
    assert asyncio.run(load.read(metrics))["r1"] == 7.0
    assert upstreams["http://a"].asked == 4
