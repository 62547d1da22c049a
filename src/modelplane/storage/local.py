"""Storage: local paths, file:// URIs, and pvc://claim/path mapped under a configurable mount root. A pvc:// path
never leaves its claim's directory, and when MODELPLANE_FILE_ROOTS is set (the platform sets it) neither does a
local path leave those roots — symlinks resolved, so a link inside a root cannot point out of it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelplane.storage.base import AccessDenied, InvalidURI, NotFound, Progress, Provider, Select

CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a PVC name is a DNS-1123 label


def confine(path: Path, roots: list[Path], what: str) -> Path:
    """`path` with every symlink resolved, if it lies inside one of `roots`; AccessDenied otherwise."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise AccessDenied(f"{path} cannot be resolved: {exc}") from None
    for root in roots:
        base = root.resolve()
        if real == base or base in real.parents:
            return real
    allowed = ", ".join(str(r) for r in roots)
    raise AccessDenied(f"{path} is outside {what} ({allowed})")


def file_roots() -> list[Path] | None:
    """The directories local model paths must lie in (MODELPLANE_FILE_ROOTS), or None: anywhere."""
    raw = os.environ.get("MODELPLANE_FILE_ROOTS")
    if raw is None:
        return None
    return [Path(p) for p in raw.split(os.pathsep) if p]


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
        roots = file_roots()
        if roots is not None:
            return confine(path, roots, "the allowed file roots (MODELPLANE_FILE_ROOTS, `modelplane up --file-root`)")
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
    """`pvc://claim/path` → `$MODELPLANE_PVC_ROOT/claim/path` (default root /mnt/pvc, where KServe mounts claims);
    the path stays inside the claim's directory."""

    def root(self) -> Path:
        return Path(os.environ.get("MODELPLANE_PVC_ROOT", "/mnt/pvc"))

    def path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise InvalidURI(f"expected pvc://<claim>/<path>, got {uri}")
        if not CLAIM.match(parsed.netloc):
            raise InvalidURI(f"{parsed.netloc!r} is not a PersistentVolumeClaim name")
        return self.root() / parsed.netloc / unquote(parsed.path).lstrip("/")

    def local_path(self, uri: str) -> Path:
        path = self.path(uri)
        claim = self.root() / urlparse(uri).netloc
        return confine(path, [claim], f"the claim's directory {claim}")
