"""Compatibility: KServe's `Model` base class — KServe's constructor, `predictor_config` (from the server's
`--predictor_host` / `--predictor_protocol`), and a `predict` that forwards to the predictor when there is one, as
a KServe transformer's does."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from modelplane.model.base import Headers
from modelplane.model.base import Model as _Model
from modelplane.protocol.errors import NotImplementedByModel


class PredictorProtocol(Enum):
    REST_V1 = "v1"
    REST_V2 = "v2"
    GRPC_V2 = "grpc-v2"


@dataclass(frozen=True)
class PredictorConfig:
    """KServe's PredictorConfig: where a transformer's predictor is and how to call it."""

    predictor_host: str
    predictor_protocol: str = PredictorProtocol.REST_V1.value
    predictor_use_ssl: bool = False
    predictor_request_timeout_seconds: int = 600
    predictor_request_retries: int = 0
    predictor_health_check: bool = False

    @property
    def protocol(self) -> str:
        return self.predictor_protocol


_server_config: PredictorConfig | None = None  # set by ModelServer.start from its arguments


class Model(_Model):
    def __init__(
        self, name: str, predictor_config: PredictorConfig | None = None, return_response_headers: bool = False
    ) -> None:
        super().__init__(name)
        self._predictor_config = predictor_config
        self.return_response_headers = return_response_headers
        self._forwarder: Any = None

    @property
    def predictor_config(self) -> PredictorConfig | None:
        return self._predictor_config or _server_config

    @property
    def predictor_host(self) -> str:
        config = self.predictor_config
        return config.predictor_host if config else ""

    @property
    def protocol(self) -> str:
        config = self.predictor_config
        return config.predictor_protocol if config else PredictorProtocol.REST_V1.value

    async def predict(self, payload: Any, headers: Headers | None = None, response_headers: Any = None) -> Any:
        """Without an override: forward to the predictor in its protocol (a transformer), else refuse."""
        if not self.predictor_host:
            raise NotImplementedByModel("Could not find predictor_host.")
        if self._forwarder is None:
            from modelplane.model.transformer import Transformer

            options = {"predictor_host": self.predictor_host, "predictor_protocol": self.protocol}
            self._forwarder = Transformer(self.name, options)
        return await self._forwarder.predict(payload, headers)
