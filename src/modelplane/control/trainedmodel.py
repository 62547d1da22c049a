"""Control plane: KServe's TrainedModel (v1alpha1) — its webhook's checks, whether the parent InferenceService is a
multi-model server, memory admission against the predictor's limit, and the status KServe writes. Pure."""

from __future__ import annotations

import re
from typing import Any

from modelplane.control.api import InferenceService, PredictorExtension, TrainedModel
from modelplane.control.webhook import ValidationError
from modelplane.model.fields import byte_quantity

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
STORAGE_PREFIXES = ("gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://", "hf://")
FRAMEWORKS = ("model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml")
FRAMEWORKS += ("lightgbm", "paddle")
DEFAULT_MEMORY = 2**30  # the model cache of a multi-model predictor without a memory limit
CONDITIONS = ("FrameworkSupported", "InferenceServiceReady", "IsMMSPredictor", "MemoryResourceAvailable")


def predictor_model(isvc: InferenceService) -> tuple[str, PredictorExtension] | None:
    """The predictor's model field (`model:` or a framework field such as `sklearn:`) and its format name."""
    pred = isvc.spec.predictor
    if pred.model is not None:
        return pred.model.model_format.name, pred.model
    for name in FRAMEWORKS[1:]:
        ext = getattr(pred, name, None)
        if ext is not None:
            return name, ext
    return None


def is_mms(isvc: InferenceService) -> bool:
    """KServe's IsMMSPredictor: a custom container with MULTI_MODEL_SERVER=true, or a model predictor with no
    storageUri of its own (its models come from TrainedModels) that is not Hugging Face."""
    pred = isvc.spec.predictor
    if pred.containers:
        return any(e.name == "MULTI_MODEL_SERVER" and e.value == "true" for e in pred.containers[0].env or [])
    found = predictor_model(isvc)
    if found is None:
        return False
    fmt, ext = found
    extra = ext.model_dump(by_alias=True)
    return fmt != "huggingface" and not ext.storage_uri and not extra.get("storage") and not extra.get("storageUris")


def memory_limit(isvc: InferenceService) -> int:
    """The predictor container's memory limit in bytes (DEFAULT_MEMORY when it has none)."""
    found = predictor_model(isvc)
    resources = (found[1].resources if found else None) or {}
    raw = (resources.get("limits") or {}).get("memory")
    try:
        return byte_quantity(str(raw)) if raw else DEFAULT_MEMORY
    except ValueError:
        return DEFAULT_MEMORY


def cache_flag(isvc: InferenceService) -> str:
    """The multi-model server's model cache: as large as its container's memory limit."""
    return f"--model-cache-bytes={memory_limit(isvc)}"


def config_name(isvc: str) -> str:
    """KServe's ConfigMap of a multi-model InferenceService's models (shard 0: KServe never shards)."""
    return f"modelconfig-{isvc}-0"


def model_list(tms: list[TrainedModel]) -> list[dict[str, Any]]:
    """The ConfigMap's `models.json` as KServe's TrainedModel controller writes it, by name."""
    return [
        {"modelName": tm.metadata.name, "modelSpec": dict(tm.spec.model)}
        for tm in sorted(tms, key=lambda t: t.metadata.name)
    ]


def memory_of(tm: TrainedModel) -> int:
    return byte_quantity(str(tm.spec.model.get("memory")))


def validate(tm: TrainedModel, old: TrainedModel | None = None) -> None:
    """Raise ValidationError as KServe's TrainedModel webhook would (create, or update when `old` is given)."""
    name = tm.metadata.name
    if not NAME_RE.match(name):
        raise ValidationError(
            f'the TrainedModel "{name}" is invalid: a TrainedModel name must consist of alphanumeric characters, '
            f"'_' or '-' (regex used for validation is '[a-zA-Z0-9_-]+')"
        )
    if not tm.spec.inference_service:
        raise ValidationError(f'the TrainedModel "{name}" is invalid: spec.inferenceService is required')
    model = tm.spec.model
    uri = str(model.get("storageUri") or "")
    if not uri.startswith(STORAGE_PREFIXES) and not uri.startswith("/"):
        raise ValidationError(
            f'the TrainedModel "{name}" is invalid: storageUri {uri!r} must start with one of '
            f"{', '.join(STORAGE_PREFIXES)} or be an absolute path"
        )
    if not model.get("framework"):
        raise ValidationError(f'the TrainedModel "{name}" is invalid: spec.model.framework is required')
    try:
        memory_of(tm)
    except ValueError as exc:
        raise ValidationError(f'the TrainedModel "{name}" is invalid: spec.model.memory: {exc}') from None
    if old is not None and str(old.spec.model.get("memory")) != str(model.get("memory")):
        was = old.spec.model.get("memory")
        raise ValidationError(f'the TrainedModel "{name}" is invalid: spec.model.memory is immutable (it was {was})')


def admitted(models: list[TrainedModel], limit: int) -> set[str]:
    """The TrainedModels of one InferenceService whose memory fits its predictor's limit, oldest first (as KServe
    allocates them in turn); the check is advisory, as KServe's: the others are still loaded, their status says so."""
    out, used = set(), 0
    for tm in sorted(models, key=lambda t: (t.metadata.creation_timestamp or "", t.metadata.name)):
        size = memory_of(tm)
        if used + size <= limit:
            out.add(tm.metadata.name)
            used += size
    return out


def status(
    tm: TrainedModel,
    parent: InferenceService,
    memory_ok: bool,
    pulled: str | None,
    now: str,
    load_failure: str | None = None,
) -> dict[str, Any]:
    """KServe's TrainedModel status: its conditions, all needed for Ready, and the URL it answers at. `pulled`:
    None once the model's files are in place, else what is still wrong (pulling, or the pull's failure);
    `load_failure`: why a replica could not load it (KServe's agent reports nothing of the kind). A condition that
    did not change keeps its lastTransitionTime (so an unchanged status is the same document)."""
    before = {c.get("type"): c for c in (tm.status or {}).get("conditions", [])}

    def since(kind: str, state: str) -> str:
        old = before.get(kind) or {}
        return str(old["lastTransitionTime"]) if old.get("status") == state and old.get("lastTransitionTime") else now

    parent_ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (parent.status or {}).get("conditions", [])
    )
    mms = is_mms(parent)
    checks = {
        "FrameworkSupported": (True, "", ""),
        "InferenceServiceReady": (parent_ready, "InferenceServiceNotReady", "the parent InferenceService is not ready"),
        "IsMMSPredictor": (
            mms,
            "IsNotMMSPredictor",
            "the parent's predictor has a storageUri: not a multi-model server",
        ),
        "MemoryResourceAvailable": (
            memory_ok,
            "MemoryResourceNotAvailable",
            "the TrainedModels of this InferenceService need more memory than its predictor's limit",
        ),
    }
    conditions = []
    for kind in CONDITIONS:
        ok, reason, message = checks[kind]
        state = "True" if ok else "False"
        entry: dict[str, Any] = {"type": kind, "status": state, "lastTransitionTime": since(kind, state)}
        if not ok:
            entry.update(reason=reason, message=message)
        conditions.append(entry)
    failing = [c for c in conditions if c["status"] == "False"]
    ready: dict[str, Any] = {"type": "Ready", "status": "True"}
    if failing:
        ready.update(status="False", reason=failing[0]["reason"], message=failing[0]["message"])
    elif pulled is not None:
        ready.update(status="False", reason="ModelNotPulled", message=pulled)
    elif load_failure is not None:
        ready.update(status="False", reason="ModelLoadFailed", message=f"{load_failure[:400]}; fix the model's files")
    ready["lastTransitionTime"] = since("Ready", ready["status"])
    out: dict[str, Any] = {"conditions": [*conditions, ready]}
    base = (parent.status or {}).get("url")
    if base:
        found = predictor_model(parent)
        v2 = found is not None and (found[1].protocol_version or "").endswith("v2")
        name = tm.metadata.name
        path = f"/v2/models/{name}/infer" if v2 else f"/v1/models/{name}:predict"
        out["url"] = base + path
        address = ((parent.status or {}).get("address") or {}).get("url")
        if address:
            out["address"] = {"url": address + path}
    return out
