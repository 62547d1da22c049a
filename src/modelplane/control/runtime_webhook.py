"""Control plane: KServe's validating webhook for ServingRuntime and ClusterServingRuntime — no two enabled runtimes
of the same kind (and namespace) may give one auto-selected model format the same priority, and a runtime must give
a format one priority; same rules and messages as KServe's."""

from __future__ import annotations

from typing import Any

from modelplane.control.api import ServingRuntime, ServingRuntimeSpec, SupportedModelFormat
from modelplane.control.runtimes import with_builtins
from modelplane.control.webhook import ValidationError


def validate_runtime(new: ServingRuntime, existing: list[ServingRuntime]) -> None:
    """Raise ValidationError when `new` may not be stored beside `existing` (the runtimes of its kind: in its
    namespace for a ServingRuntime, all for a ClusterServingRuntime; `new`'s own stored version is skipped)."""
    spec = new.spec
    if spec.disabled or not existing:
        return
    cluster = new.kind == "ClusterServingRuntime"
    mixed = _priorities_differ(spec)
    if mixed:
        where = "clusterservingruntime" if cluster else "servingruntime"
        raise ValidationError(
            f"different priorities assigned for the model format {mixed} under the {where} {name(new)}"
        )
    for other in existing:
        clash = _same_priority(spec, other.spec, other.metadata.name, new.metadata.name)
        if clash:
            reason = f"same priority assigned for the model format {clash}"
            if cluster:
                raise ValidationError(f"{reason} in the clusterservingruntimes {other.metadata.name} and {name(new)}")
            raise ValidationError(
                f"{reason} in the servingruntimes {other.metadata.name} and {name(new)} in namespace "
                f"{new.metadata.namespace}"
            )


def runtimes_beside(new: ServingRuntime, stored: list[dict[str, Any]]) -> list[ServingRuntime]:
    """The runtimes `new` is checked against: the stored ones of its kind (and namespace), and for a
    ClusterServingRuntime the built-in ones it does not replace (on a cluster `config/` installs them)."""
    runtimes = [ServingRuntime.model_validate(d) for d in stored]
    return with_builtins(runtimes) if new.kind == "ClusterServingRuntime" else runtimes


def name(runtime: ServingRuntime) -> str:
    return runtime.metadata.name


def _auto(f: SupportedModelFormat) -> bool:
    return bool(f.auto_select)


def _priorities_differ(spec: ServingRuntimeSpec) -> str | None:
    """A format listed twice (auto-selected) with two different priorities."""
    seen: dict[str, int | None] = {}
    for f in spec.supported_model_formats:
        if not _auto(f):
            continue
        if f.name in seen:
            before = seen[f.name]
            if before is not None and f.priority is not None and before != f.priority:
                return f.name
        else:
            seen[f.name] = f.priority
    return None


def _same_priority(new: ServingRuntimeSpec, old: ServingRuntimeSpec, old_name: str, new_name: str) -> str | None:
    """The format both runtimes auto-select with the same priority, when they could compete: both enabled,
    both single- or both multi-model, a protocol in common (KServe's rule)."""
    if new.multi_model != old.multi_model or old.disabled or old_name == new_name:
        return None
    if not set(new.protocol_versions) & set(old.protocol_versions):
        return None
    for o in old.supported_model_formats:
        for n in new.supported_model_formats:
            same_format = o.name.lower() == n.name.lower() and o.version == n.version
            if _auto(o) and _auto(n) and same_format and o.priority is not None and o.priority == n.priority:
                return n.name
    return None
