"""Model API: Transformer — a Model whose predict forwards to the predictor (KServe's --predictor_host,
--predictor_protocol v1 | v2 | grpc-v2); users override preprocess and postprocess."""

from __future__ import annotations

from typing import Any

from modelplane.model.base import Headers, Model
from modelplane.protocol.errors import InferenceError
from modelplane.protocol.types import InferRequest

# request headers a transformer passes on to the predictor (tracing and auth), as KServe's allow-list does
FORWARDED_HEADERS = (
    "authorization",
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "traceparent",
    "tracestate",
    "ce-id",
)


class Transformer(Model):
    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        opts = options or {}
        self.predictor_host = str(opts.get("predictor_host") or "")
        self.protocol = str(opts.get("predictor_protocol") or "v1")
        if self.protocol not in ("v1", "v2", "grpc-v2"):
            raise ValueError(f"predictor_protocol {self.protocol!r} is not supported (v1, v2, grpc-v2)")
        if not self.predictor_host:
            raise ValueError("a transformer needs --predictor_host")
        self._client: Any = None

    def load(self) -> bool:
        self.ready = True
        return True

    async def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        return await self._send(payload, headers, self.protocol)

    async def _send(self, payload: Any, headers: Headers | None, protocol: str) -> Any:
        forwarded = {k: v for k in FORWARDED_HEADERS if (v := (headers or {}).get(k))}
        if protocol == "grpc-v2":
            return await self._grpc(payload, forwarded)
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=300)
        base = f"http://{self.predictor_host}"
        if protocol == "v2":
            from modelplane.protocol.codecs.v2_client import decode_response, encode_request

            body = encode_request(payload) if isinstance(payload, InferRequest) else payload
            r = await self._client.post(
                f"{base}/v2/models/{self.name}/infer",
                content=body,
                headers={**forwarded, "content-type": "application/json"},
            )
            self._check(r)
            return decode_response(r.content)
        r = await self._client.post(f"{base}/v1/models/{self.name}:predict", json=payload, headers=forwarded)
        self._check(r)
        return r.json()

    async def _grpc(self, payload: Any, forwarded: dict[str, str]) -> Any:
        """ModelInfer on `host:port`; a path after the address (`host:port/serving/ns/name`) is sent as the
        `x-modelplane-route` metadata, which the platform's gateway routes by."""
        import grpc

        from modelplane.grpcproto import inference_pb2 as pb
        from modelplane.grpcproto.client import decode_response, encode_request

        if not isinstance(payload, InferRequest):
            raise InferenceError("a grpc-v2 transformer must preprocess into an InferRequest")
        target, _, route = self.predictor_host.partition("/")
        if self._client is None:
            self._client = grpc.aio.insecure_channel(target)
        call = self._client.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        metadata = list(forwarded.items()) + ([("x-modelplane-route", "/" + route)] if route else [])
        try:
            reply = await call(encode_request(payload, self.name), metadata=metadata, timeout=300)
        except grpc.aio.AioRpcError as exc:
            raise InferenceError(f"the predictor answered {exc.code().name}: {exc.details()}") from exc
        return decode_response(reply)

    def _check(self, response: Any) -> None:
        if response.status_code >= 400:
            raise InferenceError(f"the predictor answered {response.status_code}: {response.text[:300]}")


class Passthrough(Transformer):
    """The agent's model: every request goes to the runtime it fronts in the protocol it arrived in (V2 infer as V2,
    V1 predict as V1), so that modelplane's server — its payload logger and adaptive batcher — can stand in front
    of any runtime (KServe's agent sidecar). `--predictor_host` is the runtime's address, `127.0.0.1:8080` in a
    pod."""

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, {"predictor_protocol": "v1", **(options or {})})

    async def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        return await self._send(payload, headers, "v2" if isinstance(payload, InferRequest) else "v1")
