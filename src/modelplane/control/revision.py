"""Control plane: revisions — immutable snapshots of a component's template, named as KServe names them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Revision:
    namespace: str
    isvc: str
    component: str
    number: int
    name: str
    template_hash: str
    template: dict[str, Any]
    created: str

    @property
    def key(self) -> str:
        """Unique on this platform: revision names repeat across namespaces, and when an InferenceService is
        deleted and re-created, so backends key replicas, routes, pools and pulled models by namespace, name and
        template hash."""
        return f"{self.namespace}.{self.name}.{self.template_hash[:8]}"


def revision_name(key: str) -> str:
    """The KServe revision name inside a Revision.key."""
    return key.split(".")[1] if key.count(".") == 2 else key
