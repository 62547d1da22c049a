"""Local backend: the mesh registry in etcd, for several platforms sharing models (as ModelMesh keeps its registry
in etcd). Reads are answered from an in-memory mirror (the request path never waits for etcd); writes go to the
mirror at once and, from its log (mesh_log.py), to etcd in the background; a watch on the prefix brings the other
platforms' writes in. Spoken over etcd's v3 JSON gateway with httpx: no etcd client library."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from modelplane.backends.local.mesh_log import LoggedRegistry

log = logging.getLogger("modelplane.mesh")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode()


def _range_end(prefix: str) -> str:
    """The key just past every key that starts with `prefix` (etcd's prefix range)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


class EtcdRegistry(LoggedRegistry):
    """MeshRegistry shared through etcd at `url` (http://host:2379) under `prefix`. `start()` loads what is there and
    starts the writer and the watch; `close()` flushes and stops them."""

    def __init__(self, url: str, prefix: str = "/modelplane/mesh/") -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.prefix = prefix
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None  # set whenever the writer has emptied the queue
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def _written(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _apply(self, key: str, value: str | None) -> None:
        self.apply(key.removeprefix(self.prefix), value)

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(10.0, read=None))
        reply = await self._client.post(
            "/v3/kv/range", json={"key": _b64(self.prefix), "range_end": _range_end(self.prefix)}
        )
        reply.raise_for_status()
        doc = reply.json()
        for kv in doc.get("kvs", []):
            self._apply(_text(kv["key"]), _text(kv.get("value", "")))
        revision = int(doc.get("header", {}).get("revision", 0))
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._watch(revision + 1))]

    async def flush(self) -> None:
        """Wait until every write made so far is in etcd."""
        if self._pending and self._idle is not None:
            self._idle.clear()
            await self._idle.wait()

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _writer(self) -> None:
        assert self._client is not None and self._wake is not None and self._idle is not None
        while True:
            if not self._pending:
                self._idle.set()
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                op, key, value = self._pending[0]
                body: dict[str, Any] = {"key": _b64(self.prefix + key)}
                try:
                    if op == "put":
                        body["value"] = _b64(value or "")
                        await self._client.post("/v3/kv/put", json=body)
                    else:
                        await self._client.post("/v3/kv/deleterange", json=body)
                except httpx.HTTPError as exc:
                    log.warning("etcd write failed, retrying: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                self._pending.popleft()

    async def _watch(self, start: int) -> None:
        """Apply every change under the prefix (ours come back too: applying them again changes nothing)."""
        assert self._client is not None
        request = {"create_request": {"key": _b64(self.prefix), "range_end": _range_end(self.prefix)}}
        while True:
            request["create_request"]["start_revision"] = start
            try:
                async with self._client.stream("POST", "/v3/watch", json=request) as reply:
                    async for line in reply.aiter_lines():
                        if not line.strip():
                            continue
                        result: Mapping[str, Any] = json.loads(line).get("result") or {}
                        for event in result.get("events", []):
                            kv = event["kv"]
                            start = int(kv.get("mod_revision", start)) + 1
                            value = None if event.get("type") == "DELETE" else _text(kv.get("value", ""))
                            self._apply(_text(kv["key"]), value)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("etcd watch ended, reconnecting: %s", exc)
                await asyncio.sleep(1.0)
