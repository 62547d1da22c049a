"""Runtimes: framework adapters behind one contract, chosen by name and imported only when used."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from modelplane.model.base import Model

# runtime name -> "module:Class". Importing this table imports no framework.
RUNTIMES: dict[str, str] = {
    "sklearn": "modelplane.runtimes.sklearn:SKLearnModel",
    "xgboost": "modelplane.runtimes.xgboost:XGBoostModel",
    "lightgbm": "modelplane.runtimes.lightgbm:LightGBMModel",
    "onnx": "modelplane.runtimes.onnx:ONNXModel",
    "pytorch": "modelplane.runtimes.pytorch:PyTorchModel",
    "triton": "modelplane.runtimes.triton:TritonModel",
    "huggingface": "modelplane.runtimes.huggingface:HuggingFaceModel",  # encoders; causal LMs: the next entry
    "huggingface-llm": "modelplane.runtimes.llm.causal:CausalLMModel",
    "pmml": "modelplane.runtimes.pmml:PMMLModel",
    "tensorflow": "modelplane.runtimes.tensorflow:TensorFlowModel",
    "mllib": "modelplane.runtimes.mllib:MLlibModel",
}

_EXTENSIONS: dict[str, str] = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".txt": "lightgbm",
    ".onnx": "onnx",
    ".pt": "pytorch",
    ".pt2": "pytorch",
    ".pmml": "pmml",
}


HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def import_object(path: str) -> Any:
    """Import `pkg.module:Attr` (or `pkg.module.Attr`)."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"expected 'package.module:Class', got {path!r}")
    return getattr(importlib.import_module(module), attr)


NOT_MODELS = frozenset({"model-settings.json", "settings.json"})  # MLServer's settings beside a model: not XGBoost


def detect_runtime(model_dir: Path) -> str | None:
    """Guess the runtime from the model file in `model_dir` (None when the directory holds no model file)."""
    if (model_dir / "config.pbtxt").is_file():  # a model directory in Triton's layout
        return "triton"
    if (model_dir / "saved_model.pb").is_file():
        return "tensorflow"
    if (model_dir / "metadata").is_dir() and (model_dir / "stages").is_dir():
        return "mllib"  # a Spark ML PipelineModel
    if (model_dir / "config.json").is_file() and any((model_dir / w).is_file() for w in HF_WEIGHTS):
        return "huggingface"  # a transformers directory (its config.json is no XGBoost model)
    if model_dir.is_file():
        files = [model_dir]
    elif model_dir.is_dir():
        files = [p for p in model_dir.iterdir() if p.is_file()]
    else:
        return None
    for path in sorted(files):
        if path.name in NOT_MODELS:
            continue
        if path.suffix == ".bst":
            with path.open("rb") as fh:  # LightGBM's text format starts with "tree"; XGBoost's .bst is binary
                return "lightgbm" if fh.read(4) == b"tree" else "xgboost"
        if path.suffix in _EXTENSIONS:
            return _EXTENSIONS[path.suffix]
    return None


GENERATIVE_TASKS = ("text_generation", "text2text_generation")
_GENERATIVE_ARCHS = ("ForCausalLM", "LMHeadModel")


def generative(model_dir: Path | None, options: dict[str, Any] | None = None) -> bool:
    """Whether a Hugging Face directory (or `--task`) asks for text generation rather than an encoder task."""
    task = (options or {}).get("task")
    if task:
        return str(task) in GENERATIVE_TASKS
    config = model_dir / "config.json" if model_dir is not None else None
    if config is None or not config.is_file():
        return False
    try:
        archs = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return False
    return any(isinstance(a, str) and a.endswith(_GENERATIVE_ARCHS) for a in archs)


def runtime_class(runtime: str, model_dir: Path | None = None, options: dict[str, Any] | None = None) -> type[Model]:
    """The Model class of a built-in runtime name, or of a `pkg.module:Class` path. The `huggingface` runtime
    serves encoders and causal LMs with different classes: the directory's config (or `--task`) picks."""
    if runtime == "huggingface" and generative(model_dir, options):
        runtime = "huggingface-llm"
    target = RUNTIMES.get(runtime, runtime)
    if ":" not in target and "." not in target:
        raise ValueError(f"unknown runtime {runtime!r}; built-in runtimes: {', '.join(sorted(RUNTIMES))}")
    cls = import_object(target)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ValueError(f"{target} is not a modelplane.Model subclass")
    return cls
