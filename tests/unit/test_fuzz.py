"""Fuzzing with random bodies: the REST app (V1, V2 JSON, V2 binary, repository), the gRPC codec and servicer
deserializer, and the control-plane API answer every input with a 2xx or a 4xx — never a 5xx, never a crash."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.asgi import call_async

from modelplane.backends.local.apiserver import ApiServer
from modelplane.backends.local.auth import ApiGuard, TokenFile, ensure_token
from modelplane.backends.local.store import Store
from modelplane.grpcproto import inference_pb2 as pb
from modelplane.model.base import Model
from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.types import InferRequest, InferResponse, Tensor
from modelplane.server.app import ModelServer
from modelplane.server.grpc import codec as grpc_codec
from modelplane.server.grpc.servicer import Undecodable, _lenient
from modelplane.server.settings import ServerSettings

DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16", "BYTES", "bogus", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
shapes = st.lists(st.one_of(st.integers(-2, 6), st.sampled_from([2**27, 2**40, 2**63 - 1])), max_size=5)


@st.composite
def v2_docs(draw) -> dict:
    inputs = []
    for _ in range(draw(st.integers(0, 3))):
        item = {"name": draw(st.text(max_size=4)), "datatype": draw(st.sampled_from(DATATYPES)), "shape": draw(shapes)}
        if draw(st.booleans()):
            item["data"] = draw(json_values)
        else:
            item["parameters"] = {"binary_data_size": draw(st.one_of(st.integers(-4, 64), json_values))}
        inputs.append(item)
    doc = {"inputs": inputs if draw(st.booleans()) else draw(json_values)}
    if draw(st.booleans()):
        doc["outputs"] = draw(st.one_of(json_values, st.lists(st.fixed_dictionaries({"name": st.text(max_size=4)}))))
    if draw(st.booleans()):
        doc["parameters"] = draw(json_values)
    return doc


class Constant(Model):
    """Answers every well-formed request the same way: the fuzzing is about parsing, not the model."""

    def load(self) -> bool:
        self.ready = True
        return True

    def predict(self, payload, headers=None):  # type: ignore[no-untyped-def]
        if isinstance(payload, InferRequest):
            return InferResponse(self.name, [Tensor.from_numpy("y", np.zeros(1, dtype=np.float32))])
        return {"predictions": [0]}


@pytest.fixture(scope="module")
def rest_app():
    server = ModelServer(ServerSettings(max_body_bytes=2**20), [Constant("m")])
    asyncio.run(server.load_models())
    yield server.rest_app
    server.executor.shutdown(wait=False)


def _rest(app, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    return asyncio.run(call_async(app, method, path, headers, body))[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=v2_docs(), blob=st.binary(max_size=64), split=st.one_of(st.none(), st.integers(-8, 400)))
def test_v2_infer_never_answers_5xx(rest_app, doc, blob, split):
    header = orjson.dumps(doc)
    headers = {"content-type": "application/json"}
    body = header
    if split is not None:  # the binary extension, with an honest or a lying header length
        body = header + blob
        headers["inference-header-content-length"] = str(len(header) if split % 3 == 0 else split)
    status = _rest(rest_app, "POST", "/v2/models/m/infer", headers, body)
    assert status < 500, (doc, split)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.binary(max_size=128), json_values.map(orjson.dumps)),
    ctype=st.sampled_from(["application/json", "text/plain", "", "application/cloudevents+json", "x/y"]),
    path=st.sampled_from(
        [
            "/v1/models/m:predict",
            "/v2/models/m/infer",
            "/v2/repository/index",
            "/v2/repository/models/../load",
            "/v2/repository/models/%2e%2e/unload",
            "/v2/models/m/versions/x/infer",
            "/v1/models/:predict",
        ]
    ),
    ce=st.booleans(),
)
def test_any_body_on_any_route_never_answers_5xx(rest_app, body, ctype, path, ce):
    headers = {"content-type": ctype}
    if ce:
        headers.update({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"})
    assert _rest(rest_app, "POST", path, headers, body) < 500


@st.composite
def grpc_requests(draw) -> pb.ModelInferRequest:
    msg = pb.ModelInferRequest(model_name="m", id=draw(st.text(max_size=4)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        shape = [s for s in draw(shapes) if -(2**63) <= s < 2**63]
        tensor = msg.inputs.add(name=draw(st.text(max_size=4)), datatype=draw(st.sampled_from(DATATYPES)), shape=shape)
        if raw:
            msg.raw_input_contents.append(draw(st.binary(max_size=64)))
        else:
            field = draw(st.sampled_from(["int_contents", "fp32_contents", "bytes_contents", "bool_contents"]))
            values = {
                "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8),
                "fp32_contents": st.lists(st.floats(width=32), max_size=8),
                "bytes_contents": st.lists(st.binary(max_size=4), max_size=8),
                "bool_contents": st.lists(st.booleans(), max_size=8),
            }[field]
            getattr(tensor.contents, field).extend(draw(values))
    if draw(st.booleans()) and msg.inputs:  # a raw count that disagrees with the inputs
        msg.raw_input_contents.append(b"\0")
    return msg


@settings(max_examples=300, deadline=None)
@given(msg=grpc_requests())
def test_grpc_codec_raises_only_invalid_input(msg):
    with contextlib.suppress(InvalidInput):
        grpc_codec.decode_request(msg)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=256))
def test_grpc_deserializer_never_raises(data):
    parsed = _lenient(pb.ModelInferRequest.FromString)(data)
    assert isinstance(parsed, pb.ModelInferRequest | Undecodable)
    if isinstance(parsed, pb.ModelInferRequest):
        with contextlib.suppress(InvalidInput):
            grpc_codec.decode_request(parsed)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("api-fuzz")
    token = ensure_token(home)
    store = Store(home / "state.db")
    yield ApiServer(store, guard=ApiGuard(TokenFile(home), frozenset())), token
    store.close()


manifests = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["serving.kserve.io/v1beta1", "v1"]) | json_values,
        "kind": st.sampled_from(["InferenceService", "ServingRuntime"]) | json_values,
        "metadata": st.fixed_dictionaries(
            {}, optional={"name": st.sampled_from(["iris", "Bad_Name", ""]) | json_values, "annotations": json_values}
        )
        | json_values,
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "predictor": st.fixed_dictionaries(
                    {},
                    optional={
                        "model": json_values
                        | st.fixed_dictionaries({"modelFormat": st.fixed_dictionaries({"name": st.just("sklearn")})}),
                        "minReplicas": json_values,
                        "timeout": json_values,
                        "containers": json_values,
                    },
                )
                | json_values,
                "transformer": json_values,
            },
        )
        | json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=manifests | json_values,
    method=st.sampled_from(["POST", "PUT"]),
    query=st.sampled_from([b"", b"apply=true", b"apply=x", b"watch=1&resourceVersion=-1"]),
)
def test_api_never_answers_5xx(api, doc, method, query):
    server, token = api
    path = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices" + ("/iris" if method == "PUT" else "")
    headers = {"host": "localhost", "authorization": f"Bearer {token}", "content-type": "application/json"}
    status = asyncio.run(call_async(server, method, path, headers, orjson.dumps(doc), query))[0]
    assert status < 500, doc


@pytest.mark.parametrize("body", [b"0", b'"text"', b"[1, 2]", b"null"])
def test_a_structured_cloudevent_that_is_not_an_object_is_400(rest_app, body):
    """Found by the fuzz test above: JSON that is no object under application/cloudevents+json was a 500."""
    headers = {"content-type": "application/cloudevents+json"}
    assert _rest(rest_app, "POST", "/v1/models/m:predict", headers, body) == 400
