"""Storage: scheme → provider table (imported only when a URI needs it) and the download entry point."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from urllib.parse import urlparse

from modelplane.storage.base import InvalidURI, MissingExtra, Progress, Provider
from modelplane.storage.cache import Cache
from modelplane.storage.patterns import Patterns
from modelplane.storage.redact import redact

# scheme -> "module:Class", imported on first use (an s3:// pull never imports the Azure or Google SDKs)
SCHEMES: dict[str, str] = {
    "": "modelplane.storage.local:LocalProvider",
    "file": "modelplane.storage.local:LocalProvider",
    "pvc": "modelplane.storage.local:PVCProvider",
    "http": "modelplane.storage.http:HTTPProvider",
    "https": "modelplane.storage.http:HTTPProvider",
    "s3": "modelplane.storage.s3:S3Provider",
    "gs": "modelplane.storage.gcs:GCSProvider",
    "hf": "modelplane.storage.hf:HFProvider",
}
# module -> the extra that installs its SDK (named in the error when the SDK is missing)
EXTRAS: dict[str, str] = {
    "modelplane.storage.s3": "s3",
    "modelplane.storage.gcs": "gcs",
    "modelplane.storage.azure": "azure",
    "modelplane.storage.hf": "hf",
}
# http(s) hosts that are object stores rather than plain file servers: host suffix -> "module:Class"
HOSTS: dict[str, str] = {
    ".blob.core.windows.net": "modelplane.storage.azure:AzureProvider",
}


def provider_for(uri: str) -> Provider:
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter is a path, not a scheme
        scheme = ""
    target = SCHEMES.get(scheme)
    if scheme in ("http", "https"):
        host = (urlparse(uri).hostname or "").lower()
        target = next((t for suffix, t in HOSTS.items() if host.endswith(suffix)), target)
    if target is None:
        raise InvalidURI(f"unsupported storage URI scheme {scheme!r}; supported: {', '.join(s for s in SCHEMES if s)}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def _apply_patterns(root: Path, patterns: Patterns) -> None:
    if not (patterns.allow or patterns.ignore):
        return
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and not patterns.wants(path.relative_to(root).as_posix()):
            path.unlink()


def download(
    uri: str,
    dest: str | Path | None = None,
    cache: Cache | None = None,
    progress: Progress | None = None,
    scope: str = "",
) -> Path:
    """Make the model at `uri` available locally and return its directory (see _download); a storage SDK that is
    not installed is a MissingExtra error naming the pip command, not an ImportError."""
    try:
        return _download(uri, dest, cache, progress, scope)
    except ImportError as exc:
        module = type(provider_for(uri)).__module__
        extra = EXTRAS.get(module, "storage")
        raise MissingExtra(
            f"{redact(uri)} needs {exc.name or 'a storage SDK'}, which is not installed: "
            f"pip install 'modelplane[{extra}]'"
        ) from exc


def _download(
    uri: str,
    dest: str | Path | None = None,
    cache: Cache | None = None,
    progress: Progress | None = None,
    scope: str = "",
) -> Path:
    """Make the model at `uri` available locally and return its directory.

    `scope` separates cache entries of different tenants (the platform passes the namespace): the same URI pulled
    for two namespaces is two directories, so one namespace never reads what another pulled with its credentials.

    Local paths are served in place. Remote objects whose provider reports a version go through the node-local
    cache (a second pull of an unchanged object copies nothing); with `dest` (the storage-initializer form) the
    files are then copied there.
    """
    provider = provider_for(uri)
    if provider.is_local(uri) and dest is None:
        return provider.local_path(uri)
    patterns = Patterns.from_env()

    def fetch(into: Path) -> None:
        provider.fetch(uri, into, progress, patterns.wants if patterns.key() else None)
        _apply_patterns(into, patterns)

    version = None if provider.is_local(uri) else provider.version(uri)
    if version is not None:
        cached = (cache or Cache()).get_or_fetch(uri, version, fetch, patterns.key() + ("\0" + scope if scope else ""))
        if dest is None:
            return cached
        shutil.copytree(cached, Path(dest), dirs_exist_ok=True)
        return Path(dest)
    if dest is None:  # no version to key a cache entry by: fetch into a fresh directory every time
        store = cache or Cache()
        dest = store.root / "uncached" / store.key(uri, "", scope)
        shutil.rmtree(dest, ignore_errors=True)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    fetch(dest)
    return dest
