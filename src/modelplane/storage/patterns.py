"""Storage: STORAGE_ALLOW_PATTERNS / STORAGE_IGNORE_PATTERNS (JSON list or comma list, fnmatch on relative paths)."""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass


def _parse(value: str | None) -> list[str]:
    if not value:
        return []
    value = value.strip()
    if value.startswith("["):
        items = json.loads(value)
        return [str(i) for i in items]
    return [p.strip() for p in value.split(",") if p.strip()]


@dataclass(frozen=True, slots=True)
class Patterns:
    allow: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Patterns:
        return cls(
            tuple(_parse(os.environ.get("STORAGE_ALLOW_PATTERNS"))),
            tuple(_parse(os.environ.get("STORAGE_IGNORE_PATTERNS"))),
        )

    def wants(self, relative_path: str) -> bool:
        if self.allow and not any(fnmatch.fnmatch(relative_path, p) for p in self.allow):
            return False
        return not any(fnmatch.fnmatch(relative_path, p) for p in self.ignore)

    def key(self) -> str:
        return json.dumps([self.allow, self.ignore]) if (self.allow or self.ignore) else ""
