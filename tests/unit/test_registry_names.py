"""Repository names: one path segment only, and loading unknown names leaves nothing behind (no lock per name)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from modelplane.protocol.errors import Forbidden, InvalidInput, ModelNotFound
from modelplane.server.dataplane import DataPlane
from modelplane.server.metrics import Metrics
from modelplane.server.registry import ModelRegistry, check_model_name


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/b", "/etc", "a\\b", ".hidden", "", "x" * 300, "a\0b", "a b"])
def test_names_that_could_be_paths_are_refused(name):
    with pytest.raises(InvalidInput):
        check_model_name(name)


@pytest.mark.parametrize("name", ["iris", "sklearn-iris", "model_1.v2", "A"])
def test_ordinary_names_pass(name):
    assert check_model_name(name) == name


def test_thousands_of_unknown_names_leave_no_locks():
    def factory(name: str):
        raise ModelNotFound(name)

    registry = ModelRegistry(ThreadPoolExecutor(1), Metrics(), factory=factory)
    dp = DataPlane(registry)

    async def run() -> None:
        for i in range(4000):
            with pytest.raises(ModelNotFound):
                await dp.load(f"unknown-{i:04d}-" + "x" * 200)

    asyncio.run(run())
    assert len(registry._locks) == 0


def test_control_mode_none_refuses_before_touching_the_name():
    dp = DataPlane(ModelRegistry(ThreadPoolExecutor(1), Metrics(), control_mode="none"))
    for call in (dp.load, dp.unload):
        with pytest.raises(Forbidden):
            asyncio.run(call("iris"))


def test_a_missing_storage_sdk_names_the_extra(monkeypatch):
    import sys

    from modelplane.storage import StorageError, download

    for module in ("google.cloud.storage", "google.cloud", "google.api_core", "google.auth"):
        monkeypatch.setitem(sys.modules, module, None)  # as if modelplane[gcs] were not installed
    with pytest.raises(StorageError, match=r"pip install 'modelplane\[gcs\]'"):
        download("gs://bucket/model")
