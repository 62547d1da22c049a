"""Storage: hf://owner/model[:revision] with huggingface_hub (HF_ENDPOINT for mirrors and private hubs, HF_TOKEN).

The version is the commit sha the revision resolves to, so a moved branch is a new cache entry and a pinned
commit never downloads twice. Files are fetched in parallel straight into the target directory.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelplane.storage.base import (
    AccessDenied,
    InvalidURI,
    NoProgress,
    NotFound,
    Progress,
    Provider,
    Select,
    StorageError,
    Transient,
)


def _translate(exc: Exception, what: str) -> StorageError:
    from huggingface_hub import errors as hf

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, hf.GatedRepoError) or status in (401, 403):
        return AccessDenied(f"access to {what} was denied (HTTP {status}); check HF_TOKEN")
    if isinstance(exc, hf.RepositoryNotFoundError | hf.RevisionNotFoundError | hf.EntryNotFoundError) or status == 404:
        return NotFound(f"{what} was not found")
    if isinstance(exc, hf.HFValidationError | hf.BadRequestError):
        return InvalidURI(f"{what}: {exc}")
    return Transient(f"{what}: {type(exc).__name__}")


class HFProvider(Provider):
    def __init__(self) -> None:
        self._shas: dict[str, str] = {}

    @staticmethod
    def parse(uri: str) -> tuple[str, str]:
        """(repo_id, revision) of hf://owner/model[:revision]; the revision defaults to main."""
        rest = uri.split("://", 1)[1].strip("/")
        repo, _, revision = rest.partition(":")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InvalidURI(f"expected hf://<owner>/<model>[:<revision>], got {uri}")
        return repo, revision or "main"

    @staticmethod
    def _options() -> dict[str, Any]:
        return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "token": os.environ.get("HF_TOKEN") or None}

    def _sha(self, uri: str) -> str:
        if uri not in self._shas:
            from huggingface_hub import HfApi

            repo, revision = self.parse(uri)
            try:
                info = HfApi(**self._options()).model_info(repo, revision=revision)
            except Exception as exc:
                raise _translate(exc, uri) from exc
            if not info.sha:
                raise NotFound(f"{uri}: the hub did not resolve revision {revision!r} to a commit")
            self._shas[uri] = info.sha
        return self._shas[uri]

    def version(self, uri: str) -> str | None:
        return "hf:" + self._sha(uri)

    def fetch(self, uri: str, dest: Path, progress: Progress | None = None, select: Select | None = None) -> None:
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub.hf_api import RepoFile

        repo, _ = self.parse(uri)
        sha = self._sha(uri)
        options = self._options()
        try:
            tree = HfApi(**options).list_repo_tree(repo, revision=sha, recursive=True)
            files = [f for f in tree if isinstance(f, RepoFile) and (select is None or select(f.path))]
        except Exception as exc:
            raise _translate(exc, uri) from exc
        sink = progress or NoProgress()
        sink.start(sum(f.size for f in files))

        def one(f: RepoFile) -> None:
            try:
                hf_hub_download(repo, f.path, revision=sha, local_dir=dest, **options)
            except Exception as exc:
                raise _translate(exc, f"{uri}/{f.path}") from exc
            sink.advance(f.size)

        if files:
            with ThreadPoolExecutor(min(8, len(files))) as pool:
                list(pool.map(one, files))
        shutil.rmtree(dest / ".cache", ignore_errors=True)  # huggingface_hub's local_dir bookkeeping
