"""JSON mode's recognizer: every prefix of a JSON object is accepted, the first character no object could have there
is refused, and the object's end is seen; plus the engine on a tiny random model producing objects that parse."""

from __future__ import annotations

import asyncio
import json

import pytest
from support import llm_models

from modelplane.protocol.generation import GenerationRequest, SamplingParams
from modelplane.runtimes.llm.causal import CausalLMModel
from modelplane.runtimes.llm.json_mode import JsonObject

VALID = [
    "{}",
    ' { "a" : 1 } ',
    '{"a": [1, -2.5e+3, 0.0, true, false, null, "x\\n\\u00e9"], "b": {"c": {}}, "d": []}',
    '{"nested": [[[]], [{"k": "v"}]], "e": -0, "f": 12E-2}',
]
INVALID = ["[1]", '{"a" 1}', '{"a": 01}', '{"a": tru}', '{"a": 1,}', '{"a": "\x01"}', '{"a": 1}}', "{,}", '{"a":-}']


@pytest.mark.parametrize("text", VALID)
def test_every_prefix_of_an_object_is_accepted_and_the_end_is_seen(text: str) -> None:
    state = JsonObject()
    for i, ch in enumerate(text.rstrip()):
        assert state.feed(ch), (text, i)
        assert state.done == (i == len(text.rstrip()) - 1)
    json.loads(text)


@pytest.mark.parametrize("text", INVALID)
def test_the_first_impossible_character_is_refused(text: str) -> None:
    state = JsonObject()
    assert not state.feed(text)


def test_copies_do_not_share_state() -> None:
    state = JsonObject()
    state.feed('{"a": [')
    probe = state.copy()
    assert probe.feed("1]}") and probe.done
    assert not state.done and state.feed("]}") and state.done


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    lm = CausalLMModel("lm", llm_models.causal_lm(tmp_path_factory.mktemp("json") / "lm"), {"intra_op_threads": "1"})
    lm.load()
    yield lm
    lm.unload()


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_random_model_in_json_mode_writes_objects_that_parse(model: CausalLMModel, temperature: float) -> None:
    async def one(seed: int) -> tuple[str, str | None]:
        params = SamplingParams(max_tokens=120, temperature=temperature, seed=seed, json_object=True)
        deltas = [d async for d in model.generate(GenerationRequest("Answer in JSON:", params))]
        return "".join(d.text for d in deltas), deltas[-1].finish_reason

    for seed in range(4):
        text, reason = asyncio.run(one(seed))
        if reason == "stop":  # the object closed within max_tokens: it must parse as one
            assert isinstance(json.loads(text), dict), text
        else:  # cut by max_tokens: still a prefix of an object
            assert reason == "length" and JsonObject().feed(text), text
