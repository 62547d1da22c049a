"""The OpenAI-compatible routes of a real `modelplane serve` process (a tiny random-weight GPT-2 built in the test
beside all-MiniLM-L6-v2), driven by the official `openai` client, sync and async, streaming and not — plus the SSE
framing byte by byte, a client that disconnects mid-stream, Triton's generate extension and the error envelope."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from support import llm_models
from support import server as srv
from support import tensor_models as tm

CHAT = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("openai-repo")
    llm_models.causal_lm(root / "tiny", context=4096)  # long enough for a stream that outlives its client
    shutil.copytree(tm.minilm(), root / "minilm")  # a copy: a repository's models may not link outside it
    return root


@pytest.fixture(scope="module")
def server(repo: Path, logs: Path) -> Iterator[srv.RunningServer]:
    running = srv.start(["serve", "--model-dir", str(repo), "--intra_op_threads", "1"], logs, timeout=120)
    yield running
    running.stop()


@pytest.fixture
def client(server: srv.RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.http + "/openai/v1", api_key="unused", max_retries=0)


def test_models_lists_both_models_on_both_paths(server: srv.RunningServer, client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["minilm", "tiny"]
    assert client.models.retrieve("tiny").owned_by == "modelplane"
    plain = httpx.get(server.http + "/v1/models").json()  # KServe's V1 listing and OpenAI's, in one document
    assert sorted(plain["models"]) == ["minilm", "tiny"] and plain["object"] == "list"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_chat_and_completions_with_the_sync_client(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=6, temperature=0)
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason in ("length", "stop") and chat.usage is not None
    assert chat.usage.completion_tokens <= 6 and chat.usage.prompt_tokens > 0
    done = client.completions.create(
        model="tiny", prompt="The quick", max_tokens=5, temperature=0, logprobs=2, echo=True, n=2, seed=4
    )
    assert [c.index for c in done.choices] == [0, 1]
    first = done.choices[0]
    assert first.text.startswith("The quick") and first.logprobs is not None
    assert len(first.logprobs.tokens or []) == len(first.logprobs.token_logprobs or []) <= 5
    assert all(len(top) == 2 for top in first.logprobs.top_logprobs or [])
    seeded = [
        client.completions.create(model="tiny", prompt="Hi", max_tokens=12, seed=9).choices[0].text for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_streamed_chat_matches_the_whole_answer_and_reports_usage(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=10, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=CHAT,
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    body = [c for c in chunks if c.choices]
    assert all(c.usage is None for c in body)
    assert all(c.choices[0].finish_reason is None for c in body[:-1]) and body[-1].choices[0].finish_reason
    assert "".join(c.choices[0].delta.content or "" for c in body) == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


def test_async_client_streams_completions(server: srv.RunningServer) -> None:
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.http + "/openai/v1", api_key="unused", max_retries=0)

        async def one(prompt: str) -> str:
            stream = await client.completions.create(
                model="tiny", prompt=prompt, max_tokens=8, temperature=0, stream=True
            )
            return "".join([c.choices[0].text async for c in stream if c.choices])

        try:
            return await asyncio.gather(*(one(p) for p in ["The quick", "Hello world", "Hi"]))
        finally:
            await client.close()

    texts = asyncio.run(main())
    client = openai.OpenAI(base_url=server.http + "/openai/v1", api_key="unused", max_retries=0)
    alone = [
        client.completions.create(model="tiny", prompt=p, max_tokens=8, temperature=0).choices[0].text
        for p in ["The quick", "Hello world", "Hi"]
    ]
    assert texts == alone


def test_embeddings_equal_the_encoder_runtimes_own_and_rerank_orders(
    server: srv.RunningServer, client: openai.OpenAI
) -> None:
    texts = ["A man is eating food.", "The girl is carrying a baby."]
    got = client.embeddings.create(model="minilm", input=texts)  # the client asks for base64 and decodes it
    floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")
    v1 = httpx.post(server.http + "/v1/models/minilm:predict", json={"instances": texts}).json()["predictions"]
    assert np.allclose([d.embedding for d in got.data], v1, atol=1e-5)
    assert np.allclose([d.embedding for d in floats.data], v1, atol=1e-5)
    assert got.usage.prompt_tokens > 0
    ranked = httpx.post(
        server.http + "/openai/v1/rerank",
        json={
            "model": "minilm",
            "query": "someone eats bread",
            "documents": ["A dog runs.", "A man is eating bread."],
            "top_n": 2,
        },
    ).json()
    assert [r["index"] for r in ranked["results"]] == [1, 0] and ranked["results"][0]["document"]["text"]
    assert ranked["usage"]["total_tokens"] > 0


def test_errors_use_openai_status_and_shape(server: srv.RunningServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny", messages=CHAT, extra_body={"mirostat": 2})
    assert bad.value.body["param"] == "mirostat"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=CHAT, logit_bias={"3": 5})
    with pytest.raises(openai.BadRequestError) as long:
        client.completions.create(model="tiny", prompt="Hi", max_tokens=100000)
    assert "maximum context length" in long.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=CHAT)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="tiny", input="x")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="minilm", messages=CHAT)
    raw = httpx.post(server.http + "/openai/v1/chat/completions", content=b"{not json")
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}
    wrong = httpx.get(server.http + "/openai/v1/chat/completions")
    assert wrong.status_code == 400 and "POST" in wrong.json()["error"]["message"]


def test_sse_framing_byte_by_byte(server: srv.RunningServer) -> None:
    body = {"model": "tiny", "prompt": "Hello", "max_tokens": 6, "temperature": 0, "stream": True, "n": 2}
    with httpx.stream("POST", server.http + "/v1/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(response.iter_raw())
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b"" and all(re.fullmatch(rb"data: (\{.*\}|\[DONE\])", e) for e in events[:-1])
    assert events.count(b"data: [DONE]") == 1


def metric(server: srv.RunningServer, name: str, labels: str = 'model_name="tiny"') -> float:
    text = httpx.get(server.http + "/metrics").text
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    assert match, text[-2000:]
    return float(match.group(1))


def test_a_client_that_disconnects_frees_its_sequence(server: srv.RunningServer) -> None:
    before = metric(server, "modelplane_llm_engine_tokens_total")
    body = {"model": "tiny", "prompt": "Hi", "max_tokens": 4000, "temperature": 0, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", server.http + "/openai/v1/completions", json=body) as response:
        chunks = response.iter_raw()  # held: dropping the iterator would close the connection here
        next(chunks)
        assert metric(server, "modelplane_llm_running_sequences") == 1
    deadline = time.monotonic() + 60
    while metric(server, "modelplane_llm_running_sequences") != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metric(server, "modelplane_llm_running_sequences") == 0
    assert metric(server, "modelplane_llm_engine_tokens_total") - before < 4000  # stopped, not run to the end


def test_triton_generate_extension(server: srv.RunningServer, client: openai.OpenAI) -> None:
    params = {"max_tokens": 6, "temperature": 0}
    whole = httpx.post(server.http + "/v2/models/tiny/generate", json={"text_input": "Hello", "parameters": params})
    assert whole.status_code == 200 and whole.json()["model_name"] == "tiny"
    same = client.completions.create(model="tiny", prompt="Hello", max_tokens=6, temperature=0).choices[0].text
    assert whole.json()["text_output"] == same
    with httpx.stream(
        "POST", server.http + "/v2/models/tiny/generate_stream", json={"text_input": "Hello", "parameters": params}
    ) as response:
        raw = b"".join(response.iter_raw())
    pieces = [httpx.Response(200, content=e[6:]).json() for e in raw.split(b"\n\n") if e]
    assert "".join(p["text_output"] for p in pieces) == same and pieces[-1]["finish_reason"]
    bad = httpx.post(server.http + "/v2/models/tiny/generate", json={"text_input": "x", "parameters": {"beam": 2}})
    assert bad.status_code == 400 and "beam" in bad.json()["error"]


def test_route_prefix_follows_kserves_variable(repo: Path, logs: Path) -> None:
    other = srv.start(
        ["serve", "--model-dir", str(repo / "tiny"), "--model-name", "tiny"],
        logs,
        env={"KSERVE_OPENAI_ROUTE_PREFIX": "llm"},
        timeout=120,
    )
    try:
        assert httpx.get(other.http + "/llm/v1/models").json()["data"][0]["id"] == "tiny"
        assert httpx.get(other.http + "/openai/v1/models").status_code == 404
        done = httpx.post(
            other.http + "/v1/chat/completions", json={"model": "tiny", "messages": CHAT, "max_tokens": 2}
        )
        assert done.status_code == 200  # plain /v1 always
    finally:
        other.stop()


def test_json_object_mode_through_the_client(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(
        model="tiny", messages=CHAT, max_tokens=200, temperature=0, response_format={"type": "json_object"}
    )
    text = done.choices[0].message.content or ""
    if done.choices[0].finish_reason == "stop":  # the object closed: it parses as one
        assert isinstance(json.loads(text), dict)
    else:
        assert text.lstrip().startswith("{")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="tiny", messages=CHAT, response_format={"type": "json_schema", "json_schema": {"name": "x"}}
        )


def test_llm_metrics_are_exported(server: srv.RunningServer, client: openai.OpenAI) -> None:
    client.completions.create(
        model="tiny", prompt="Hello", max_tokens=4, temperature=0, extra_body={"ignore_eos": True}
    )
    for name in (
        "modelplane_llm_time_to_first_token_seconds_count",
        "modelplane_llm_inter_token_latency_seconds_count",
    ):
        assert metric(server, name) > 0
    assert metric(server, "modelplane_llm_tokens_total", 'direction="prompt",model_name="tiny"') > 0
    assert metric(server, "modelplane_llm_tokens_total", 'direction="generation",model_name="tiny"') >= 4
    assert metric(server, "modelplane_llm_waiting_sequences") == 0
    assert 0 <= metric(server, "modelplane_llm_kv_cache_usage") <= 1
