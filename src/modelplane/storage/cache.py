"""Storage: the node-local model cache — keyed by URI + object version, one download per key, never half-written.

Layout under the cache root: `<key>/model/` (the files), `<key>/meta.json`, `<key>/SUCCESS` (written last, then
the whole entry is renamed into place), `<key>.lock` (flock held while one process downloads; others wait;
removed by its holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelplane.storage.redact import redact


def default_root() -> Path:
    if os.environ.get("MODELPLANE_CACHE_DIR"):
        return Path(os.environ["MODELPLANE_CACHE_DIR"])
    home = Path(os.environ.get("MODELPLANE_HOME", Path.home() / ".modelplane"))
    return home / "cache"


@dataclass(slots=True)
class CacheEntry:
    key: str
    uri: str
    version: str
    size: int
    created: float
    used: float
    path: Path


class Cache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def key(self, uri: str, version: str, variant: str = "") -> str:
        return hashlib.sha256(f"{uri}\0{version}\0{variant}".encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        """flock on `<key>.lock`, removed again by its holder (no stray lock files): a waiter that wakes up on
        a lock file already unlinked by the previous holder opens the new one and waits again."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{key}.lock"
        while True:
            with path.open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = -1
                if current != os.fstat(fh.fileno()).st_ino:
                    continue  # unlinked (and maybe recreated) while we waited: lock the live file
                try:
                    yield
                finally:
                    path.unlink(missing_ok=True)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                return

    def get_or_fetch(self, uri: str, version: str, fetch: Callable[[Path], None], variant: str = "") -> Path:
        """The cached model directory for (uri, version), downloading it with `fetch(dir)` if absent."""
        key = self.key(uri, version, variant)
        entry = self.root / key
        if (entry / "SUCCESS").exists():
            os.utime(entry / "SUCCESS")
            return entry / "model"
        with self._locked(key):
            if (entry / "SUCCESS").exists():  # another process finished while we waited
                return entry / "model"
            if entry.exists():  # left half-written by a crash: never served, replaced
                shutil.rmtree(entry)
            staging = self.root / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                (staging / "model").mkdir(parents=True)
                fetch(staging / "model")
                size = sum(p.stat().st_size for p in (staging / "model").rglob("*") if p.is_file())
                meta = {"uri": redact(uri), "version": version, "size": size, "created": time.time()}
                (staging / "meta.json").write_text(json.dumps(meta))
                (staging / "SUCCESS").touch()
                staging.rename(entry)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return entry / "model"

    def entries(self) -> list[CacheEntry]:
        out = []
        if not self.root.exists():
            return out
        for meta_file in sorted(self.root.glob("*/meta.json")):
            entry = meta_file.parent
            if not (entry / "SUCCESS").exists():
                continue
            meta = json.loads(meta_file.read_text())
            out.append(
                CacheEntry(
                    entry.name,
                    meta["uri"],
                    meta["version"],
                    meta["size"],
                    meta["created"],
                    (entry / "SUCCESS").stat().st_mtime,
                    entry / "model",
                )
            )
        return out

    def prune(self, unused_for_s: float = 0.0) -> list[CacheEntry]:
        """Remove entries not used for `unused_for_s` seconds (0: all), skipping any being written right now."""
        removed = []
        now = time.time()
        for e in self.entries():
            if now - e.used < unused_for_s:
                continue
            with self._locked(e.key):
                shutil.rmtree(self.root / e.key, ignore_errors=True)
            removed.append(e)
        return removed
