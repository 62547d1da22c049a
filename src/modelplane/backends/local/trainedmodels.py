"""Local backend: KServe's TrainedModels on one machine — the agent puller's role. Each TrainedModel's storageUri is
pulled into its multi-model InferenceService's repository (MODELPLANE_HOME/mms/<namespace>/<isvc>/<model>, marked
with a hash of its spec), a changed spec is pulled again and the old copy unloaded from the replicas, a deleted one
is removed and unloaded, a TrainedModel whose InferenceService is gone is deleted; statuses as KServe writes them.
The same puller keeps the models of ModelMesh InferenceServices in their runtime's shared repository (`hosted`).
The replicas load a model on its first request (their model cache)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelplane.backends.local.activator import Endpoint
from modelplane.backends.local.store import Store
from modelplane.backends.local.upstream import Upstream, UpstreamError
from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import InferenceService, TrainedModel
from modelplane.storage import puller

log = logging.getLogger("modelplane.controller")
MARKER = puller.MARKER


class Predictors(Protocol):
    """What the puller needs of an InferenceService's predictor replicas (the local backend; a fake in tests)."""

    def ready(self, namespace: str, isvc: str) -> list[Endpoint]: ...
    def failures(self, namespace: str, isvc: str, model: str) -> dict[str, str]: ...  # replica -> why it failed
    def forgive(self, namespace: str, isvc: str, model: str) -> None: ...


@dataclass
class Pull:
    digest: str
    thread: threading.Thread | None = None
    error: str = ""
    swapped: bool = False  # it replaced an older copy: the replicas holding the model load it again


def spec_digest(tm: TrainedModel) -> str:
    return puller.spec_digest(tm.spec.model)


class TrainedModels:
    """Called once per controller pass (on the event loop): pulls run in daemon threads, never on the loop."""

    def __init__(
        self,
        store: Store,
        root: Path,
        predictors: Predictors,
        upstream: Callable[[str], Upstream],
        clock: Callable[[], str],
    ) -> None:
        self.store = store
        self.root = root  # MODELPLANE_HOME/mms
        self.predictors = predictors
        self.upstream = upstream
        self.clock = clock
        self._pulls: dict[tuple[str, str, str], Pull] = {}
        self._swept: frozenset[tuple[str, str, str]] | None = None  # the TrainedModels the last sweep kept
        # models hosted for the controller (ModelMesh InferenceServices), by parent: concrete id -> storageUri, or
        # None for one kept as it was pulled (the model a vmodel still serves while its successor loads)
        self.hosted: dict[tuple[str, str], dict[str, str | None]] = {}

    def host(self, parent: tuple[str, str], models: dict[str, str | None]) -> None:
        if models:
            self.hosted[parent] = models
        else:
            self.hosted.pop(parent, None)

    def pulled(self, parent: tuple[str, str], name: str) -> tuple[bool, str]:
        """(whether the model's files are in place, why its pull failed)."""
        pull = self._pulls.get((*parent, name))
        if pull is None or (pull.thread is not None and pull.thread.is_alive()):
            return False, ""
        return not pull.error, pull.error

    def repository(self, namespace: str, isvc: str) -> Path:
        return self.root / namespace / isvc

    async def step(self) -> None:
        isvcs = {_key(d): d for d in self.store.list("InferenceService")}
        by_parent: dict[tuple[str, str], list[TrainedModel]] = {}
        for doc in self.store.list("TrainedModel"):
            tm = TrainedModel.model_validate(doc)
            parent = (tm.metadata.namespace, tm.spec.inference_service)
            if parent not in isvcs:  # as KServe: a TrainedModel whose InferenceService is gone goes too
                self.store.delete("TrainedModel", tm.metadata.namespace, tm.metadata.name)
                continue
            by_parent.setdefault(parent, []).append(tm)
        reloads: list[tuple[tuple[str, str], str]] = []
        for parent, models in by_parent.items():
            isvc = InferenceService.model_validate(isvcs[parent])
            fits = tmctl.admitted(models, tmctl.memory_limit(isvc))
            for tm in models:
                uri = str(tm.spec.model.get("storageUri"))
                pulled, changed = self._pull(parent, tm.metadata.name, uri, spec_digest(tm))
                if changed:  # new files: loaded again where held; the old ones' load failures say nothing of them
                    reloads.append((parent, tm.metadata.name))
                    self.predictors.forgive(*parent, tm.metadata.name)
                failed = self.predictors.failures(*parent, tm.metadata.name)
                why = "; ".join(f"{replica}: {message}" for replica, message in sorted(failed.items())) or None
                status = tmctl.status(tm, isvc, tm.metadata.name in fits, pulled, self.clock(), why)
                if status != tm.status:
                    self.store.set_status("TrainedModel", tm.metadata.namespace, tm.metadata.name, status)
        for parent, hosted in self.hosted.items():
            for name, source in hosted.items():
                self._pull(parent, name, source, name.rsplit("-", 1)[-1])  # the id ends with its spec's hash
        present = frozenset(
            [(*parent, tm.metadata.name) for parent, tms in by_parent.items() for tm in tms]
            + [(*parent, name) for parent, hosted in self.hosted.items() for name in hosted]
        )
        unloads: list[tuple[tuple[str, str], str]] = []
        if present != self._swept:  # the directories change only when the TrainedModels do
            kept = {parent: {tm.metadata.name for tm in tms} for parent, tms in by_parent.items()}
            for parent, hosted in self.hosted.items():
                kept.setdefault(parent, set()).update(hosted)
            unloads, complete = await asyncio.to_thread(self._sweep, isvcs, kept)
            self._swept = present if complete else None  # a directory still being pulled is swept next pass
        if unloads or reloads:
            await asyncio.gather(
                *(self._tell(parent, name, "unload") for parent, name in unloads),
                *(self._tell(parent, name, "load", holding=True) for parent, name in reloads),
            )

    def _pull(self, parent: tuple[str, str], name: str, uri: str | None, digest: str) -> tuple[str | None, bool]:
        """(None when the files are in place, else what is pending or failed; whether a new copy just replaced an
        older one). `uri` None: keep the files pulled before, never pull."""
        dest = self.repository(*parent) / name
        key = (*parent, name)
        pull = self._pulls.get(key)
        if pull is None and (dest / f"{MARKER}{digest}").exists():  # pulled before a restart: look once
            pull = self._pulls[key] = Pull(digest)
        if pull is None and uri is None:
            pull = self._pulls[key] = Pull(digest, error="its files are gone (pulled before, not found now)")
        if pull is not None and pull.digest == digest:
            if pull.thread is not None and pull.thread.is_alive():
                return f"pulling {uri}", False
            if pull.error:
                return f"pulling the model failed: {pull.error}", False
            if pull.swapped:
                pull.swapped = False
                return None, True
            return None, False
        if uri is None:
            return None, False  # kept as it is (a successor with another digest never replaces it in place)
        pull = self._pulls[key] = Pull(digest)
        pull.thread = threading.Thread(target=_fetch, args=(uri, dest, digest, pull, parent[0]), daemon=True)
        pull.thread.start()
        return f"pulling {uri}", False

    def _sweep(
        self, isvcs: dict[tuple[str, str], dict[str, Any]], kept: dict[tuple[str, str], set[str]]
    ) -> tuple[list[tuple[tuple[str, str], str]], bool]:
        """Model directories no TrainedModel names any more (mark and sweep, as the agent): removed, to be unloaded;
        and whether none had to be left (its pull still running). On a worker thread: it lists and deletes."""
        gone, complete = [], True
        for parent in _existing(self.root):
            names = kept.get(parent, set())
            repo = self.repository(*parent)
            for d in [p for p in repo.iterdir() if p.is_dir() and p.name not in names and not p.name.startswith(".")]:
                key = (*parent, d.name)
                pull = self._pulls.get(key)
                if pull is not None and pull.thread is not None and pull.thread.is_alive():
                    complete = False
                    continue
                self._pulls.pop(key, None)
                shutil.rmtree(d, ignore_errors=True)
                gone.append((parent, d.name))
            if parent not in isvcs and parent not in kept and not any(repo.iterdir()):
                repo.rmdir()
        return gone, complete

    async def _tell(self, parent: tuple[str, str], name: str, action: str, holding: bool = False) -> None:
        """Every ready replica of the parent (`holding`: those that have `name` loaded, or failed to load it) gets a
        repository `action` for it: `unload` after its files went (a 404 where it was never registered is fine),
        `load` to read new files in place of the loaded ones (or of the ones that would not load)."""
        for endpoint in self.predictors.ready(*parent):
            try:
                if holding and name not in await self._holding(endpoint):
                    continue
                status, _, _ = await asyncio.wait_for(
                    self._post(endpoint, f"/v2/repository/models/{name}/{action}", b"{}"), 30
                )
                log.info("TrainedModel %s/%s: %s on %s answered %d", parent[1], name, action, endpoint.http, status)
            except (UpstreamError, TimeoutError, OSError, ValueError) as exc:
                log.warning("%s of %s on %s failed: %s", action, name, endpoint.http, exc)

    async def _holding(self, endpoint: Endpoint) -> set[str]:
        """The models a replica has loaded or failed to load (its repository index)."""
        _, _, body = await asyncio.wait_for(self._post(endpoint, "/v2/repository/index", b"{}"), 10)
        return {m["name"] for m in json.loads(bytes(body)) if m["state"] == "READY" or m["reason"].startswith("failed")}

    async def _post(self, endpoint: Endpoint, path: str, body: bytes) -> tuple[int, Any, Any]:
        headers = [(b"content-type", b"application/json")]
        return await self.upstream(endpoint.http).request("POST", path, headers, body)


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    meta = doc.get("metadata") or {}
    return str(meta.get("namespace", "default")), str(meta.get("name", ""))


def _existing(root: Path) -> Iterable[tuple[str, str]]:
    if not root.is_dir():
        return []
    return [(ns.name, d.name) for ns in root.iterdir() if ns.is_dir() for d in ns.iterdir() if d.is_dir()]


def _fetch(uri: str, dest: Path, digest: str, pull: Pull, namespace: str) -> None:
    """In a daemon thread: download into a fresh directory beside `dest`, then swap it in and mark it."""
    try:
        pull.swapped = puller.fetch_model(uri, dest, digest, scope=namespace)
    except Exception as exc:  # reported on the TrainedModel's status; tried again when its spec changes
        pull.error = f"{type(exc).__name__}: {exc}"
        log.warning("pulling %s failed: %s", uri, pull.error)
