"""Storage: local paths, file:// URIs, and pvc://claim/path mapped under a configurable mount root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelplane.storage.base import InvalidURI, NotFound, Progress, Provider, Select


class LocalProvider(Provider):
    """`/abs/path`, `relative/path` and `file:///abs/path`: served in place, copied only into an explicit dest."""

    def path(self, uri: str) -> Path:
        if uri.startswith("file://"):
            parsed = urlparse(uri)
            if parsed.netloc not in ("", "localhost"):
                raise InvalidURI(f"file URI with a remote host is not supported: {uri}")
            return Path(unquote(parsed.path))
        return Path(uri)

    def is_local(self, uri: str) -> bool:
        return True

    def local_path(self, uri: str) -> Path:
        path = self.path(uri)
        if not path.exists():
            raise NotFound(f"{path} does not exist")
        return path

    def version(self, uri: str) -> str | None:
        return None

    def fetch(self, uri: str, dest: Path, progress: Progress | None = None, select: Select | None = None) -> None:
        src = self.local_path(uri)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / src.name)


class PVCProvider(LocalProvider):
    """`pvc://claim/path` → `$MODELPLANE_PVC_ROOT/claim/path` (default root /mnt/pvc, where KServe mounts claims)."""

    def path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidURI(f"expected pvc://<claim>/<path>, got {uri}")
        root = Path(os.environ.get("MODELPLANE_PVC_ROOT", "/mnt/pvc"))
        return root / parsed.netloc / unquote(parsed.path).lstrip("/")
