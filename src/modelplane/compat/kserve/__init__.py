"""Compatibility: KServe's Python server API (`kserve.Model`, `ModelServer().start([...])`, `model_server.parser`,
`InferRequest` / `InferResponse` / `InferInput` / `InferOutput`, `logging`) over modelplane's server, so a KServe
custom model, transformer or explainer runs after changing only its import line:

    from modelplane.compat.kserve import Model, ModelServer, model_server, InferRequest, InferOutput, InferResponse
    from modelplane.compat.kserve.utils.utils import get_predict_input, get_predict_response

The request and response classes are modelplane's own under KServe's constructors, so `isinstance(payload,
InferRequest)` holds for what the server passes in, and what a model builds goes out unconverted."""

from modelplane.compat.kserve import logging, model_server
from modelplane.compat.kserve.model import Model, PredictorConfig, PredictorProtocol
from modelplane.compat.kserve.model_server import ModelServer
from modelplane.compat.kserve.types import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "Model",
    "ModelServer",
    "PredictorConfig",
    "PredictorProtocol",
    "RequestedOutput",
    "logging",
    "model_server",
]
