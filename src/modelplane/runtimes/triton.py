"""Runtimes: a model directory in Triton's layout (`config.pbtxt`, `<version>/model.onnx|model.pt`) served as it
is — the config's inputs and outputs, dynamic batching (preferred sizes, max queue delay) as the server's batcher,
instance_group count as the model's concurrency (both read when the server registers the model; a reload
changes the versions), and several versions at once by Triton's version policy, each
reachable at `/v2/models/{m}/versions/{v}`. A reload loads the versions it adds while the old ones keep serving,
then swaps them in at once."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from modelplane.model.base import Headers, Model
from modelplane.model.options import DEFAULT_QUEUE, Batching, Limits
from modelplane.protocol.errors import ModelLoadError, ModelNotFound, ModelNotReady
from modelplane.protocol.types import InferRequest, TensorSpec
from modelplane.runtimes.triton_config import ConfigError, TritonConfig, load_config

CONFIG = "config.pbtxt"


def is_triton_model(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


class TritonModel(Model):
    def __init__(self, name: str, model_dir: str | Path, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.options = options or {}
        self.config: TritonConfig | None = None
        self._versions: dict[int, Model] = {}  # replaced whole on a reload: a request keeps the dict it started with
        # the server reads batching and limits when it registers the model, before it loads; load() reports errors
        with contextlib.suppress(ModelLoadError):
            self._schedule(self._read_config())

    def _read_config(self) -> TritonConfig:
        try:
            return load_config((self.model_dir / CONFIG).read_text(), self.model_dir.name)
        except (ConfigError, OSError) as exc:
            raise ModelLoadError(f"{self.model_dir / CONFIG}: {exc}") from None

    def _schedule(self, config: TritonConfig) -> None:
        """dynamic_batching as the server's batcher; instance_group count as the model's concurrency."""
        if config.max_queue_delay_us is not None:
            self.batching = Batching(
                max_batch_size=max([config.max_batch_size, *config.preferred_batch_sizes, 1]),
                max_latency_ms=config.max_queue_delay_us / 1000,
                preferred_sizes=tuple(config.preferred_batch_sizes),
            )
        self.limits = Limits(max_concurrency=config.instances, max_queue=DEFAULT_QUEUE)

    @property
    def platform(self) -> str:
        kind = self.config.runtime if self.config else ""
        platforms = {"onnx": "onnxruntime_onnx", "pytorch": "pytorch_libtorch", "tensorflow": "tensorflow_savedmodel"}
        return platforms.get(kind, kind)

    def load(self) -> bool:
        from modelplane.runtimes import runtime_class  # by name: the runtimes stay independent of each other

        config = self._read_config()
        available = [int(p.name) for p in self.model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        try:
            wanted = config.pick(available)
        except ConfigError as exc:
            raise ModelLoadError(f"{self.model_dir / CONFIG}: {exc}") from None
        if not wanted:
            raise ModelLoadError(f"{self.model_dir} has no version directory the version policy serves")
        cls = runtime_class(config.runtime)
        current = self._versions
        loaded: dict[int, Model] = {}
        for version in wanted:
            if version in current and self.config == config:
                loaded[version] = current[version]  # unchanged: keeps serving, not loaded twice
                continue
            path = self.model_dir / str(version) / config.filename
            if not path.exists():  # a file, or a directory (model.savedmodel)
                raise ModelLoadError(f"version {version} of {self.name} has no {config.filename}")
            inner = cls(self.name, path, self.options)  # type: ignore[call-arg]
            inner.version = str(version)
            inner.load()
            _declare(inner, config)
            loaded[version] = inner
        self.config = config
        self._versions = loaded  # the swap: requests from now on see the new set
        self.version = str(max(loaded))
        self.ready = True
        return True

    def unload(self) -> None:
        versions, self._versions = self._versions, {}
        for inner in versions.values():
            inner.unload()
        self.ready = False

    def versions(self) -> list[str]:
        return [str(v) for v in sorted(self._versions)]

    def version_model(self, version: str | None) -> Model:
        versions = self._versions
        if not versions:
            raise ModelNotReady(self.name, "it was unloaded")
        if not version:
            return versions[max(versions)]
        model = versions.get(int(version)) if version.isdigit() else None
        if model is None:
            raise ModelNotFound(self.name, version)
        return model

    def input_metadata(self) -> list[TensorSpec]:
        return self.version_model(None).input_metadata() if self._versions else []

    def output_metadata(self) -> list[TensorSpec]:
        return self.version_model(None).output_metadata() if self._versions else []

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        version = payload.model_version if isinstance(payload, InferRequest) else None
        inner = self.version_model(version)
        response = inner.predict(payload, headers)
        if hasattr(response, "model_version"):
            response.model_version = inner.version
        return response


def _declare(inner: Model, config: TritonConfig) -> None:
    """The config's tensors on a model that cannot describe its own (TorchScript: by position), and a check that a
    model that can (ONNX) has the inputs the config names."""
    own = inner.input_metadata()
    if own and all(s.datatype != "ANY" for s in own):
        names = {s.name for s in own}
        missing = [s.name for s in config.inputs if s.name not in names]
        if missing:
            raise ModelLoadError(
                f"config.pbtxt input {missing[0]!r} is not an input of the model ({', '.join(sorted(names))})"
            )
        return
    if config.inputs:  # positional: the config's names and types, in order
        inner.inputs = list(config.inputs)  # type: ignore[attr-defined]
        inner.outputs = list(config.outputs)  # type: ignore[attr-defined]
