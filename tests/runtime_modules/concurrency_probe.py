"""A predictor that reports how many requests it has seen at once: each request takes ~50 ms on the event loop
(async, so nothing in the server itself serialises them) and answers the peak concurrency seen so far;
`--spin_ms` burns CPU for that long instead. Run by the
platform as a custom container: `python -m concurrency_probe --model_name NAME`."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from modelplane import Model
from modelplane.server.app import ModelServer
from modelplane.server.settings import ServerSettings


class ConcurrencyProbe(Model):
    def __init__(self, name: str, spin_ms: float = 0.0) -> None:
        super().__init__(name)
        self.inflight = 0
        self.peak = 0
        self.spin_s = spin_ms / 1000  # burn CPU instead of sleeping (for CPU autoscaling)

    async def predict(self, payload: Any, headers: Any = None) -> Any:
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.spin_s:
                end = time.perf_counter() + self.spin_s
                while time.perf_counter() < end:
                    pass
            else:
                await asyncio.sleep(0.05)
        finally:
            self.inflight -= 1
        return {"predictions": [self.peak]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--spin_ms", type=float, default=0.0)
    args, _ = parser.parse_known_args()
    model = ConcurrencyProbe(args.model_name, args.spin_ms)
    model.load()
    settings = ServerSettings(
        host="127.0.0.1", http_port=int(os.environ["HTTP_PORT"]), grpc_port=int(os.environ["GRPC_PORT"])
    )
    ModelServer(settings, [model]).run()


if __name__ == "__main__":
    main()
