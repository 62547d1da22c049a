"""The continuous-batching engine on tiny random-weight GPT-2 and Llama models built in the test: sequences
batched together produce what they produce alone, sampling is reproducible by seed, every way a sequence ends,
cancellation frees its slot, and the bounds (running sequences, waiting queue, context) hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import llm_models

from modelplane.protocol.errors import InvalidInput, Overloaded
from modelplane.protocol.generation import Delta, GenerationRequest, SamplingParams
from modelplane.runtimes import runtime_class
from modelplane.runtimes.llm.causal import CausalLMModel

PROMPTS = ["The quick", "Model serving is the art of answering", "Hi", "Hello world! How are"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_models.causal_lm(tmp_path_factory.mktemp(request.param) / "lm", request.param)


def loaded(path: Path, **options: str) -> CausalLMModel:
    model = CausalLMModel("lm", path, {"intra_op_threads": "1", **options})
    assert model.load()
    return model


@pytest.fixture(scope="module")
def lm(model_dir: Path):
    model = loaded(model_dir)
    yield model
    model.unload()


async def run(model: CausalLMModel, prompt: str | list[int], **params: object) -> tuple[str, list[Delta]]:
    n = int(params.pop("n", 1))  # type: ignore[call-overload]
    echo = bool(params.pop("echo", False))
    deltas = [d async for d in model.generate(GenerationRequest(prompt, SamplingParams(**params), n, echo))]
    return "".join(d.text for d in deltas), deltas


def test_huggingface_runtime_picks_the_causal_lm_class(model_dir: Path) -> None:
    assert runtime_class("huggingface", model_dir) is CausalLMModel
    assert runtime_class("huggingface", model_dir, {"task": "text_embedding"}).__name__ == "HuggingFaceModel"


def test_batched_sequences_produce_what_they_produce_alone(lm: CausalLMModel) -> None:
    async def main() -> None:
        alone = [await run(lm, p, max_tokens=12, temperature=0) for p in PROMPTS]
        together = await asyncio.gather(*(run(lm, p, max_tokens=12, temperature=0) for p in PROMPTS))
        assert [t for t, _ in together] == [t for t, _ in alone]

    asyncio.run(main())


def test_sequences_join_a_running_batch(lm: CausalLMModel) -> None:
    async def main() -> None:
        alone = (await run(lm, PROMPTS[1], max_tokens=6, temperature=0))[0]
        long = asyncio.ensure_future(run(lm, PROMPTS[0], max_tokens=60, temperature=0, ignore_eos=True))
        for _ in range(10000):  # until the long one is decoding
            if lm.stats().running:
                break
            await asyncio.sleep(0.001)
        joined = await run(lm, PROMPTS[1], max_tokens=6, temperature=0)
        assert joined[0] == alone
        assert (await long)[1][-1].completion_tokens == 60

    asyncio.run(main())


def test_same_seed_same_text_and_other_seeds_differ(lm: CausalLMModel) -> None:
    async def main() -> None:
        a = await run(lm, "Hello", max_tokens=24, temperature=1.0, seed=7)
        b = await run(lm, "Hello", max_tokens=24, temperature=1.0, seed=7)
        c = await run(lm, "Hello", max_tokens=24, temperature=1.0, seed=8)
        assert a[0] == b[0] and a[0] != c[0]
        top1 = await run(lm, "Hello", max_tokens=10, temperature=1.0, top_k=1, seed=3)
        greedy = await run(lm, "Hello", max_tokens=10, temperature=0)
        assert top1[0] == greedy[0]

    asyncio.run(main())


def test_max_tokens_ends_with_length_and_counts_tokens(lm: CausalLMModel) -> None:
    _, deltas = asyncio.run(run(lm, "Hi", max_tokens=5, temperature=0, ignore_eos=True))
    last = deltas[-1]
    assert last.finish_reason == "length" and last.completion_tokens == 5
    assert sum(len(d.token_ids) for d in deltas) == 5 and last.prompt_tokens == lm.count_tokens("Hi")


def test_stop_string_cuts_the_text_exactly(lm: CausalLMModel) -> None:
    text, _ = asyncio.run(run(lm, "The quick", max_tokens=30, temperature=0, ignore_eos=True))
    stop = text[4:7]
    cut, deltas = asyncio.run(run(lm, "The quick", max_tokens=30, temperature=0, ignore_eos=True, stop=[stop]))
    assert cut == text[: text.index(stop)] and deltas[-1].finish_reason == "stop"


def test_end_of_sequence_token_ends_with_stop(model_dir: Path) -> None:
    model = loaded(model_dir)
    try:
        first = asyncio.run(run(model, "Hi", max_tokens=1, temperature=0, ignore_eos=True))[1][0].token_ids[0]
        assert model.engine is not None
        model.engine.eos = {first}  # the model's next token is now its end of sequence
        _, deltas = asyncio.run(run(model, "Hi", max_tokens=10, temperature=0))
        assert deltas[-1].finish_reason == "stop" and deltas[-1].completion_tokens == 0
        _, ignored = asyncio.run(run(model, "Hi", max_tokens=3, temperature=0, ignore_eos=True))
        assert ignored[-1].finish_reason == "length"
    finally:
        model.unload()


def test_n_choices_echo_and_logprobs(lm: CausalLMModel) -> None:
    _, deltas = asyncio.run(run(lm, "Hello", max_tokens=4, temperature=1.0, seed=1, n=3, echo=True, logprobs=2))
    assert {d.index for d in deltas} == {0, 1, 2}
    assert sum(1 for d in deltas if d.finish_reason) == 3
    firsts = {}
    for d in deltas:
        firsts.setdefault(d.index, d)
        assert d.logprobs is not None and len(d.logprobs) == len(d.token_ids)
        assert all(lp.logprob <= 0 and len(lp.top) == 2 for lp in d.logprobs)
    assert all(d.prompt_text == "Hello" for d in firsts.values())


def test_frequency_penalty_makes_greedy_text_repeat_less(lm: CausalLMModel) -> None:
    plain = asyncio.run(run(lm, "Hello", max_tokens=30, temperature=0, ignore_eos=True))[1]
    penalized = asyncio.run(run(lm, "Hello", max_tokens=30, temperature=0, ignore_eos=True, frequency_penalty=2.0))[1]
    distinct = [len({t for d in ds for t in d.token_ids}) for ds in (plain, penalized)]
    assert distinct[1] > distinct[0]


def test_closing_the_stream_frees_the_sequence(lm: CausalLMModel) -> None:
    async def main() -> None:
        request = GenerationRequest("Hi", SamplingParams(max_tokens=200, temperature=0, ignore_eos=True))
        stream = lm.generate(request)
        await stream.__anext__()
        assert lm.stats()[0] == 1
        await stream.aclose()
        for _ in range(2000):
            if lm.stats()[0] == 0:
                break
            await asyncio.sleep(0.005)
        assert lm.stats()[:2] == (0, 0)

    asyncio.run(main())


def test_running_sequences_never_exceed_the_bound(model_dir: Path) -> None:
    model = loaded(model_dir, max_num_seqs="2")
    seen: list[int] = []

    async def main() -> list[str]:
        async def watch() -> None:
            while True:
                seen.append(model.stats()[0])
                await asyncio.sleep(0.001)

        watcher = asyncio.ensure_future(watch())
        texts = await asyncio.gather(*(run(model, p, max_tokens=8, temperature=0) for p in PROMPTS))
        watcher.cancel()
        return [t for t, _ in texts]

    try:
        together = asyncio.run(main())
        alone = [asyncio.run(run(model, p, max_tokens=8, temperature=0))[0] for p in PROMPTS]
        assert together == alone and max(seen) <= 2
    finally:
        model.unload()


def test_a_full_waiting_queue_refuses_with_429(model_dir: Path) -> None:
    model = loaded(model_dir, max_waiting="2")
    try:
        with pytest.raises(Overloaded) as info:
            asyncio.run(run(model, "Hi", max_tokens=2, n=3))
        assert info.value.headers["retry-after"] == "1"
    finally:
        model.unload()


def test_requests_beyond_the_context_are_refused(lm: CausalLMModel) -> None:
    with pytest.raises(InvalidInput) as info:
        asyncio.run(run(lm, "Hi", max_tokens=lm.context_length))
    assert info.value.param == "max_tokens" and "maximum context length" in info.value.message
    with pytest.raises(InvalidInput):
        asyncio.run(run(lm, [5] * (lm.context_length + 1)))
    with pytest.raises(InvalidInput) as bad:
        asyncio.run(run(lm, [10**6]))
    assert bad.value.param == "prompt"


def test_chat_template_renders_and_a_broken_one_is_a_400(lm: CausalLMModel) -> None:
    prompt = lm.chat_prompt([{"role": "user", "content": "hi"}])
    assert prompt.endswith("<|assistant|>") and "<|user|>hi" in prompt
    assert lm.chat_prompt([{"role": "user", "content": "x"}], "{{ messages[0]['content'] }}!") == "x!"
    with pytest.raises(InvalidInput) as info:
        lm.chat_prompt([{"role": "user", "content": "x"}], "{% if %}")
    assert info.value.param == "chat_template"


def test_a_prompt_starting_like_an_earlier_one_reuses_its_kv_and_answers_the_same(model_dir: Path) -> None:
    system = " ".join(llm_models.CORPUS[:6])  # well over a few 16-token blocks
    cached, plain = loaded(model_dir), loaded(model_dir, prefix_cache_tokens="0")
    try:
        for model in (cached, plain):
            asyncio.run(run(model, system + " First question?", max_tokens=4, temperature=0))
        texts = [asyncio.run(run(m, system + " Second one.", max_tokens=12, temperature=0))[0] for m in (cached, plain)]
        assert texts[0] == texts[1]
        assert cached.stats().prefix_hit_tokens >= 16 * (cached.count_tokens(system) // 16 - 1)
        assert plain.stats().prefix_hit_tokens == 0
        together = asyncio.run(_gather(cached, [system + f" Question {i}." for i in range(3)]))
        alone = [asyncio.run(run(plain, system + f" Question {i}.", max_tokens=8, temperature=0))[0] for i in range(3)]
        assert together == alone  # cached prefills joining one batch
    finally:
        cached.unload()
        plain.unload()


async def _gather(model: CausalLMModel, prompts: list[str]) -> list[str]:
    done = await asyncio.gather(*(run(model, p, max_tokens=8, temperature=0) for p in prompts))
    return [text for text, _ in done]
