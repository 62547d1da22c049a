"""The mesh registry shared through a real etcd (Debian's etcd-server, started here): two platforms' placements see
each other's copies and load failures, a stopped replica's copies are dropped for both, and a platform that starts
later finds the state already there."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.server import free_port, stop_process

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.mesh import Placement, ReplicaStats
from modelplane.backends.local.mesh_etcd import EtcdRegistry

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (apt: etcd-server)")
A, B = Endpoint("http://127.0.0.1:7001", "127.0.0.1:7002"), Endpoint("http://127.0.0.1:7003", "127.0.0.1:7004")


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[str]:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    argv = ["etcd", "--data-dir", str(tmp_path / "etcd"), "--listen-client-urls", url, "--advertise-client-urls", url]
    argv += [
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
    ]
    argv += ["--initial-cluster", f"default=http://127.0.0.1:{peer}"]
    with (tmp_path / "etcd.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "etcd.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_two_platforms_share_copies_failures_and_replica_stats(etcd: str) -> None:
    async def run() -> None:
        one, two = EtcdRegistry(etcd), EtcdRegistry(etcd)
        await one.start()
        await two.start()
        try:
            first, second = Placement(one), Placement(two)
            placed = first.choose("fraud", [A, B], {})
            await until(lambda: placed.http in two.copies("fraud"), "the copy reaches the other platform")
            assert second.choose("fraud", [A, B], {}) == placed  # routed where the first platform loaded it
            first.failed("churn", A.http, "corrupt weights")
            await until(lambda: second.failures("churn") == {A.http: "corrupt weights"}, "the failure is shared")
            assert second.choose("churn", [A, B], {}) == B
            one.publish(A.http, ReplicaStats(capacity=100, used=40, lru_age_s=3.0, models=2))
            await until(lambda: two.stats(A.http).used == 40, "replica stats are shared")
            second.gone(placed.http)
            await until(lambda: placed.http not in one.copies("fraud"), "a stopped replica's copies go for both")
            await one.flush()
            await two.flush()
        finally:
            await one.close()
            await two.close()
        later = EtcdRegistry(etcd)
        await later.start()
        try:
            assert set(later.copies("churn")) == {B.http}
            assert later.failures("churn")[A.http].message == "corrupt weights"
            assert later.stats(A.http).capacity == 100 and later.copies("fraud") == {}
        finally:
            await later.close()

    asyncio.run(run())
