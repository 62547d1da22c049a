"""Backends: a revision's `modelplane serve` settings from its template (KServe's logger and batcher fields, the
repository annotation) — shared by every backend that runs modelplane's own server."""

from __future__ import annotations

import math
from typing import Any

from modelplane.backends.seam import REPOSITORY_ANNOTATION
from modelplane.control.api import InferenceService
from modelplane.control.trainedmodel import is_mms
from modelplane.model.options import Batching
from modelplane.server.settings import LoggerConfig, ServerSettings, argv


def server_flags(isvc: InferenceService, component: str, template: dict[str, Any]) -> list[str]:
    """The settings written as `modelplane serve` options by the settings themselves (defaults omitted)."""
    settings = ServerSettings()
    if isvc.metadata.annotations.get(REPOSITORY_ANNOTATION) != "true" and not is_mms(isvc):
        # the model it was started for, and nothing else (a multi-model server's loads come from the platform,
        # which unloads and reloads its TrainedModels; clients still reach load/unload only with the annotation)
        settings.model_control_mode = "none"
    logger, batcher = template.get("logger"), template.get("batcher")
    if logger and logger.get("url"):
        settings.logger = LoggerConfig(
            url=logger["url"],
            mode=logger.get("mode", "all"),
            metadata_headers=tuple(logger.get("metadataHeaders") or ()),
            inference_service=isvc.metadata.name,
            namespace=isvc.metadata.namespace,
            component=component,
        )
    if batcher is not None:
        settings.batching = Batching(
            max_batch_size=int(batcher.get("maxBatchSize") or 32),
            max_latency_ms=float(batcher.get("maxLatency") or 5000),
            timeout_s=float(batcher["timeout"]) if batcher.get("timeout") else None,
        )
    threads = cpu_threads(template.get("resources") or {})
    return [*argv(settings), *([f"--intra_op_threads={threads}"] if threads else [])]


def cpu_threads(resources: dict[str, Any]) -> int | None:
    """Intra-op threads for tensor runtimes from the container's CPU limit (else its request), rounded up: a
    runtime sized to the whole machine inside a 1-CPU limit only thrashes. None when neither is set."""
    cpu = (resources.get("limits") or {}).get("cpu") or (resources.get("requests") or {}).get("cpu")
    if cpu is None:
        return None
    text = str(cpu).strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None  # the webhook and the API server refuse a malformed quantity before it gets here
    return max(1, math.ceil(cores))
