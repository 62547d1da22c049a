"""Local backend: the gateway's forwarding core, shared by its HTTP and gRPC sides — take a replica from the
revision's pool, send, retry when the replica failed to answer, hold while a dead replica's replacement starts, all
within the component's timeout. Every way it can fail is an error below that carries its status once (HTTP code
and gRPC code, from the same `Status` the data plane uses)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from modelplane.backends.local.activator import RECHECK_S, Endpoint, RevisionPool
from modelplane.protocol.errors import ModelplaneError, Status

T = TypeVar("T")
ATTEMPTS_ON_A_LIVE_REPLICA = 3  # transport failures from replicas that still accept connections, per request
RETRY_AFTER = {"retry-after": "1"}


class NoRoute(ModelplaneError):
    status = Status(404, "NOT_FOUND")


class RepositoryClosed(ModelplaneError):
    status = Status(403, "PERMISSION_DENIED")


class BadTarget(ModelplaneError):
    status = Status(400, "INVALID_ARGUMENT")


class NoReadyReplica(ModelplaneError):
    status = Status(503, "UNAVAILABLE")
    headers = RETRY_AFTER


class TimedOut(ModelplaneError):
    status = Status(504, "DEADLINE_EXCEEDED")


class Unreachable(ModelplaneError):
    """Replicas that are alive failed to answer (reset, hung up, broken framing) as many times as allowed."""

    status = Status(502, "UNAVAILABLE")


async def accepts(hostport: str) -> bool:
    """Whether anything listens at host:port — tells a replica that died (refused) from one that answered badly."""
    host, _, port = hostport.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 0.5)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def forward(
    pool: RevisionPool,
    within_s: float,
    what: str,
    call: Callable[[Endpoint], Awaitable[T]],
    failed: Callable[[Exception], bool],
    address: Callable[[Endpoint], str],
    affinity: int | None = None,
    held: Callable[[T], Held | None] | None = None,
    model: str | None = None,
) -> T:
    """`call(endpoint)` on a replica of `pool`'s revision, within `within_s` seconds (acquire, send, retries).

    `failed(exc)` says whether an exception of `call` means the replica did not answer (the request is sent again;
    inference requests are repeatable); anything else propagates as the answer. A replica that no longer accepts
    connections at `address(endpoint)` is dead: the request waits for its replacement (or another ready replica),
    as the activator holds requests at zero. Raises TimedOut, the pool's QueueFull / Gone, or the last failure of
    `call` once replicas that are alive failed ATTEMPTS_ON_A_LIVE_REPLICA times.

    `affinity` prefers a replica for requests that share it (bounded load: see `RevisionPool.acquire`). `held(result)`
    returns what still streams from the replica after `call` returned (None if nothing): the replica's slot and the
    in-flight count are then released when that ends, not before. `model`: the pool's placement picks a replica
    holding it (multi-model revisions)."""
    dead: tuple[Endpoint, ...] = ()
    attempts = 0
    keep = False  # a streamed answer holds its slot until the stream ends
    pool.meter.begin()
    try:
        async with asyncio.timeout(within_s):
            while True:
                endpoint = await pool.acquire(dead, affinity, model)
                if endpoint is None:  # every ready replica is one that died under this request: await a new one
                    await asyncio.sleep(RECHECK_S)
                    continue
                try:
                    result = await call(endpoint)
                    stream = held(result) if held is not None else None
                    if stream is not None:
                        keep = True
                        stream.on_done = _releaser(pool, endpoint)
                    return result
                except Exception as exc:
                    if not failed(exc):
                        raise
                    if not await accepts(address(endpoint)):
                        dead = (*dead, endpoint)  # its replacement listens on new ports
                        continue
                    attempts += 1
                    if attempts >= ATTEMPTS_ON_A_LIVE_REPLICA:
                        raise  # the last failure is the answer
                finally:
                    if not keep:
                        pool.release(endpoint)
    except TimeoutError:
        state = "did not answer" if attempts or dead or pool.replicas.ready(pool.revision) else "had no ready replica"
        raise TimedOut(f"the {what} ({pool.revision}) {state} within its {within_s:g}s timeout") from None
    finally:
        if not keep:
            pool.meter.end()


class Held(Protocol):
    on_done: Callable[[], None] | None


def _releaser(pool: RevisionPool, endpoint: Endpoint) -> Callable[[], None]:
    def release() -> None:
        pool.release(endpoint)
        pool.meter.end()

    return release
