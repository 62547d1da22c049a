"""Storage: pull models from a storage URI into a local directory, one provider module per scheme, lazily imported."""

from __future__ import annotations

from modelplane.storage.base import (
    AccessDenied,
    InvalidURI,
    NotFound,
    Provider,
    StorageError,
    Transient,
    UnsafeArchive,
)
from modelplane.storage.registry import download, provider_for

__all__ = [
    "AccessDenied",
    "InvalidURI",
    "NotFound",
    "Provider",
    "StorageError",
    "Transient",
    "UnsafeArchive",
    "download",
    "provider_for",
]
