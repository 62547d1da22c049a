"""Local backend: the LLM signals the autoscaler can scale on (`scaleMetric: sequences | queued-tokens`) — once a
second, the generative engines' gauges read from the /metrics of every ready replica of the revisions that scale on
them, summed per revision (a replica that does not answer within half a second counts as zero)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from modelplane.backends.local.activator import ReplicaView
from modelplane.backends.local.upstream import Upstream, UpstreamError
from modelplane.control.autoscaling.config import LLM_METRICS

GAUGES = {
    "sequences": ("modelplane_llm_running_sequences", "modelplane_llm_waiting_sequences"),
    "queued-tokens": ("modelplane_llm_waiting_tokens",),
}
PERIOD_S = 1.0
SCRAPE_TIMEOUT_S = 0.5


def total(exposition: bytes, metric: str) -> float:
    """The sum of the metric's gauges over every model in one replica's Prometheus text."""
    names = GAUGES[metric]
    value = 0.0
    for line in exposition.decode("utf-8", errors="replace").splitlines():
        if line.startswith(names) and line.split("{", 1)[0].split(" ", 1)[0] in names:
            try:
                value += float(line.rsplit(" ", 1)[1])
            except ValueError:
                continue
    return value


class LlmLoad:
    def __init__(
        self, replicas: ReplicaView, upstream: Callable[[str], Upstream], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.replicas = replicas
        self.upstream = upstream
        self.clock = clock
        self.values: dict[str, float] = {}
        self._read_at = -PERIOD_S

    async def read(self, metrics: Mapping[str, str]) -> dict[str, float]:
        """{revision key: summed value} for the revisions in `metrics` (key -> metric) that scale on LLM signals;
        refreshed at most once a PERIOD_S."""
        now = self.clock()
        if now - self._read_at < PERIOD_S:
            return self.values
        self._read_at = now
        wanted = {key: metric for key, metric in metrics.items() if metric in LLM_METRICS}
        results = await asyncio.gather(*(self._revision(key, metric) for key, metric in wanted.items()))
        self.values = dict(zip(wanted, results, strict=True))
        return self.values

    async def _revision(self, key: str, metric: str) -> float:
        answers = await asyncio.gather(*(self._scrape(e.http) for e in self.replicas.ready(key)))
        return sum(total(body, metric) for body in answers if body)

    async def _scrape(self, url: str) -> bytes:
        try:
            status, _, body = await asyncio.wait_for(
                self.upstream(url).request("GET", "/metrics", [], b""), SCRAPE_TIMEOUT_S
            )
        except (UpstreamError, TimeoutError, OSError, ValueError):
            return b""
        return body if status == 200 and isinstance(body, bytes) else b""
