"""OpenAI request parsing and response shapes: every field checked with the field named, unknown and unsupported
fields refused (never ignored), and the chunk, logprob, embedding and rerank documents as clients read them."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from modelplane.protocol.errors import InvalidInput
from modelplane.protocol.generation import Delta, TokenLogprob
from modelplane.protocol.openai import requests as rq
from modelplane.protocol.openai import responses as rs

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def refused(parse, doc: dict, param: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse(doc)
    assert info.value.param == param, info.value.message
    return info.value.message


def test_chat_request_maps_every_sampling_field() -> None:
    call = rq.chat(
        {
            **CHAT,
            "max_completion_tokens": 7,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 5,
            "seed": 3,
            "stop": "END",
            "n": 2,
            "presence_penalty": 0.5,
            "frequency_penalty": -1,
            "logprobs": True,
            "top_logprobs": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u",
        }
    )
    p = call.requests[0].params
    assert (p.max_tokens, p.temperature, p.top_p, p.top_k, p.seed, p.stop) == (7, 0.5, 0.9, 5, 3, ["END"])
    assert (p.presence_penalty, p.frequency_penalty, p.logprobs, call.top_logprobs) == (0.5, -1.0, 3, 3)
    assert call.requests[0].n == 2 and call.stream and call.include_usage
    assert call.messages == [{"role": "user", "content": "hi"}]
    assert rq.chat({**CHAT, "max_tokens": 4}).requests[0].params.max_tokens == 4


def test_chat_content_parts_join_and_other_parts_are_refused() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert rq.chat({"model": "m", "messages": [{"role": "user", "content": parts}]}).messages[0]["content"] == "ab"
    image = [{"type": "image_url", "image_url": {"url": "x"}}]
    refused(rq.chat, {"model": "m", "messages": [{"role": "user", "content": image}]}, "messages")
    refused(rq.chat, {"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages")
    refused(rq.chat, {"model": "m", "messages": []}, "messages")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 100}, "n"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"stop": ["a", 3]}, "stop"),
        ({"stop": ""}, "stop"),
        ({"seed": 1.5}, "seed"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
    ],
)
def test_out_of_range_fields_are_refused_by_name(extra: dict, param: str) -> None:
    refused(rq.chat, {**CHAT, **extra}, param)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {"5": 10}}, "logit_bias"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_unsupported_and_unknown_fields_are_refused_not_ignored(extra: dict, param: str) -> None:
    message = refused(rq.chat, {**CHAT, **extra}, param)
    assert param in message


def test_neutral_values_of_unsupported_fields_are_accepted() -> None:
    call = rq.chat({**CHAT, "logit_bias": {}, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}})
    assert call.model == "m"


def test_completion_prompts_in_every_shape() -> None:
    assert [r.prompt for r in rq.completion({"model": "m", "prompt": "a"}).requests] == ["a"]
    assert [r.prompt for r in rq.completion({"model": "m", "prompt": ["a", "b"]}).requests] == ["a", "b"]
    assert [r.prompt for r in rq.completion({"model": "m", "prompt": [1, 2]}).requests] == [[1, 2]]
    assert [r.prompt for r in rq.completion({"model": "m", "prompt": [[1], [2, 3]]}).requests] == [[1], [2, 3]]
    assert rq.completion({"model": "m", "prompt": "a"}).requests[0].params.max_tokens == 16  # OpenAI's default
    refused(rq.completion, {"model": "m", "prompt": [1, "a"]}, "prompt")
    refused(rq.completion, {"model": "m"}, "prompt")
    refused(rq.completion, {"prompt": "a"}, "model")
    refused(rq.completion, {"model": "m", "prompt": "a", "suffix": "z"}, "suffix")
    refused(rq.completion, {"model": "m", "prompt": "a", "best_of": 3}, "best_of")
    call = rq.completion({"model": "m", "prompt": "a", "echo": True, "logprobs": 2})
    assert call.requests[0].echo and call.requests[0].params.logprobs == 2


def test_embedding_and_rerank_requests() -> None:
    assert rq.embedding({"model": "e", "input": "x"}).texts == ["x"]
    assert rq.embedding({"model": "e", "input": ["x", "y"], "encoding_format": "base64"}).base64
    refused(rq.embedding, {"model": "e", "input": [1, 2]}, "input")
    refused(rq.embedding, {"model": "e", "input": "x", "dimensions": 8}, "dimensions")
    call = rq.rerank({"model": "r", "query": "q", "documents": ["a", {"text": "b"}], "top_n": 5})
    assert call.documents == ["a", "b"] and call.top_n == 2 and call.return_documents
    refused(rq.rerank, {"model": "r", "query": "q", "documents": [3]}, "documents")


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidInput):
        rq.chat(["not", "an", "object"])


def test_stream_chunks_carry_id_created_and_usage_null_when_usage_is_asked() -> None:
    lp = [TokenLogprob(" a", -0.5, [(" a", -0.5), ("b", -1.0)])]
    chunk = rs.chat_chunk("id1", 7, "m", 0, {"content": " a"}, None, lp, True)
    assert chunk["id"] == "id1" and chunk["created"] == 7 and chunk["usage"] is None
    assert chunk["object"] == "chat.completion.chunk" and chunk["choices"][0]["finish_reason"] is None
    content = chunk["choices"][0]["logprobs"]["content"][0]
    assert content["token"] == " a" and content["bytes"] == [32, 97] and content["top_logprobs"][1]["token"] == "b"
    assert "usage" not in rs.chat_chunk("id1", 7, "m", 0, {}, "stop", None, False)
    last = rs.usage_chunk("id1", 7, "m", "chat.completion.chunk", 5, 3)
    assert last["choices"] == [] and last["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_completion_logprobs_have_offsets_into_the_text() -> None:
    items = [TokenLogprob("ab", -1.0), TokenLogprob("c", -2.0, [("c", -2.0)])]
    doc = rs.completion_logprobs(items, 10)
    assert doc == {
        "tokens": ["ab", "c"],
        "token_logprobs": [-1.0, -2.0],
        "top_logprobs": [{}, {"c": -2.0}],
        "text_offset": [10, 12],
    }


def test_choices_assemble_echo_text_and_counts() -> None:
    choice = rs.Choice(0)
    choice.add(Delta(0, "x", [1], 3, 1, prompt_text="P"))
    choice.add(Delta(0, "y", [2], 3, 2, finish_reason="length"))
    assert (choice.text, choice.finish_reason, choice.completion_tokens) == ("Pxy", "length", 2)
    doc = rs.text_completion("c", 1, "m", [choice], False, 3)
    assert doc["usage"]["total_tokens"] == 5 and doc["choices"][0]["logprobs"] is None


def test_embeddings_as_floats_and_base64() -> None:
    vectors = np.array([[1.0, -2.5], [0.25, 3.0]], dtype=np.float32)
    floats = rs.embeddings("e", vectors, False, 4)
    assert floats["data"][1]["embedding"] == [0.25, 3.0] and floats["usage"]["prompt_tokens"] == 4
    packed = rs.embeddings("e", vectors, True, 4)["data"][0]["embedding"]
    assert np.frombuffer(base64.b64decode(packed), dtype="<f4").tolist() == [1.0, -2.5]


def test_rerank_orders_by_score_and_cuts_at_top_n() -> None:
    doc = rs.rerank("r", ["a", "b", "c"], [0.1, 0.9, 0.5], 2, True, 9)
    assert [(r["index"], r["document"]["text"]) for r in doc["results"]] == [(1, "b"), (2, "c")]
    assert "document" not in rs.rerank("r", ["a"], [0.1], 1, False, 1)["results"][0]


def test_errors_have_openai_shape() -> None:
    assert rs.error("bad", 400, "n") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "n", "code": None}
    }
    assert rs.error("x", 429)["error"]["type"] == "rate_limit_error"
    assert rs.error("x", 503)["error"]["type"] == "server_error"


def test_json_object_mode_is_asked_through_response_format() -> None:
    assert rq.chat({**CHAT, "response_format": {"type": "json_object"}}).requests[0].params.json_object
    assert not rq.chat(CHAT).requests[0].params.json_object
