"""Protocol core: transport-neutral text generation — what a generative model is asked (a prompt and its sampling
parameters) and what it streams back (deltas of text and tokens), shared by the OpenAI and V2 generate routes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SamplingParams:
    max_tokens: int | None = None  # None: up to the model's context
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None  # None: none; 0: the chosen token's; k: and the k most likely
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    json_object: bool = False  # response_format json_object: the engine constrains the text to one JSON object


@dataclass(slots=True)
class GenerationRequest:
    """One prompt to continue: `prompt` is text (a chat is rendered through the model's template first) or token
    ids; `n` independent choices; `echo` puts the prompt before each choice's text."""

    prompt: str | list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1
    echo: bool = False
    request_id: str = ""


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class Delta:
    """A piece of one choice: new text (possibly empty while a stop string might be starting), the tokens that made
    it, and on the last piece why it ended ("stop" or "length"). Token counts are running totals."""

    index: int
    text: str
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    prompt_text: str | None = None  # the first piece of an echoed choice carries the prompt


FINISH_REASONS = ("stop", "length")
