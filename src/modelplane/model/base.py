"""Model API: the Model base class users subclass; every stage may be sync or async."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelplane.model.options import Batching, Limits
from modelplane.protocol.errors import NotImplementedByModel
from modelplane.protocol.types import TensorSpec

Headers = Mapping[str, str]


class Model:
    """A servable model, KServe-compatible in shape.

    Per request the server calls ``preprocess(payload, headers)`` → ``predict(payload, headers)`` (or
    ``explain``) → ``postprocess(result, headers)``. Each may be ``def`` or ``async def``; plain ``def``
    stages run on a worker thread so a slow model never blocks the event loop. The payload is a dict (V1),
    raw bytes (V1 with a non-JSON content type) or an ``InferRequest`` (V2 REST and gRPC).

    Set ``return_response_headers = True`` to receive a mutable ``response_headers`` keyword argument in
    ``predict`` and ``postprocess``; what it holds is added to the REST response.
    """

    return_response_headers: bool = False
    batching: Batching | None = None  # adaptive batching for this model (None: the server's setting)
    limits: Limits | None = None  # overload limits for this model (None: the server's setting)

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        self.ready = False

    def load(self) -> bool:
        """Load weights; return True when ready. May be ``async``."""
        self.ready = True
        return self.ready

    def unload(self) -> None:
        """Release resources; the registry marks the model not ready afterwards."""
        self.ready = False

    def memory_bytes(self) -> int | None:
        """Bytes this loaded model holds, for the model cache's accounting (--model-cache-bytes); None: unknown,
        the cache keeps charging its files' size on disk."""
        return None

    def preprocess(self, payload: Any, headers: Headers | None = None) -> Any:
        return payload

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        raise NotImplementedByModel(f"Model {self.name} does not implement predict.")

    def postprocess(self, result: Any, headers: Headers | None = None) -> Any:
        return result

    def explain(self, payload: Any, headers: Headers | None = None) -> Any:
        raise NotImplementedByModel("Could not find explainer_host.")

    def versions(self) -> list[str]:
        """The versions served under this name (`/v2/models/{name}/versions/{v}`): one at most, unless the model
        holds several (a Triton model directory does)."""
        return [self.version] if self.version else []

    def version_model(self, version: str | None) -> Model:
        """The model that serves `version` (this one, unless the model holds several)."""
        return self

    def input_metadata(self) -> list[TensorSpec]:
        return []

    def output_metadata(self) -> list[TensorSpec]:
        return []

    @property
    def platform(self) -> str:
        return ""
