"""modelplane: a KServe-compatible model-serving platform (package root; exports the Model API lazily)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Model": "modelplane.model.base",
    "InferRequest": "modelplane.protocol.types",
    "InferResponse": "modelplane.protocol.types",
    "Tensor": "modelplane.protocol.types",
    "RequestedOutput": "modelplane.protocol.types",
}

__all__ = ["InferRequest", "InferResponse", "Model", "RequestedOutput", "Tensor", "__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelplane' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
