"""Kubernetes backend: KServe's TrainedModels on a cluster — a multi-model InferenceService's TrainedModels (its
model list is rendered from them), their status as KServe writes it, written when it changed, and the deletion of
those whose InferenceService is gone, as KServe's controller does."""

from __future__ import annotations

import logging
from typing import Any

from modelplane.backends.kubernetes.cache import Cache, Key
from modelplane.backends.kubernetes.client import ApiError, Writer
from modelplane.control import trainedmodel as tmctl
from modelplane.control.api import ISVC_API, RUNTIME_API, InferenceService, TrainedModel
from modelplane.control.revision import now

log = logging.getLogger("modelplane.operator")


class ClusterTrainedModels:
    def __init__(self, cache: Cache, writer: Writer) -> None:
        self.cache = cache
        self.writer = writer

    def of(self, namespace: str, isvc: str) -> list[TrainedModel]:
        docs = self.cache.list("TrainedModel", namespace)
        return [TrainedModel.model_validate(d) for d in docs if (d.get("spec") or {}).get("inferenceService") == isvc]

    def statuses(self, isvc: InferenceService, status: dict[str, Any] | None) -> list[Any]:
        """Status writes for the InferenceService's TrainedModels that changed: KServe's conditions (its memory
        admission, the parent's readiness) and URL. Whether the puller has the files the cluster cannot tell (as
        KServe's agent does not)."""
        meta = isvc.metadata
        tms = self.of(meta.namespace, meta.name)
        if not tms:
            return []
        if status is not None:
            isvc.status = status
        fits = tmctl.admitted(tms, tmctl.memory_limit(isvc))
        writes = []
        for tm in tms:
            new = tmctl.status(tm, isvc, tm.metadata.name in fits, None, now())
            if new != tm.status:
                writes.append(self._status(meta.namespace, tm.metadata.name, new))
        return writes

    async def _status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.writer.patch_status(RUNTIME_API, "TrainedModel", namespace, name, status)
        body = self.cache.get(RUNTIME_API, "TrainedModel", namespace, name)
        if body is not None:
            body["status"] = status  # until the watch brings it back: no second write of the same status

    async def orphans(self, gone: set[Key]) -> None:
        """TrainedModels whose InferenceService is gone are deleted, as KServe's controller does."""
        for namespace, name in gone:
            if self.cache.get(ISVC_API, "InferenceService", namespace, name) is not None:
                continue
            for tm in self.of(namespace, name):
                try:
                    await self.writer.delete(RUNTIME_API, "TrainedModel", namespace, tm.metadata.name)
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                log.info(
                    "TrainedModel %s/%s deleted: its InferenceService %s is gone", namespace, tm.metadata.name, name
                )
