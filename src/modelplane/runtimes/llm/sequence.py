"""LLM runtime: what the engine works on — its limits, and one sequence (a choice being generated) with the state
the engine thread keeps for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelplane.protocol.generation import Delta, SamplingParams, TokenLogprob
from modelplane.runtimes.llm.json_mode import JsonObject
from modelplane.runtimes.llm.text import TextStream

Deliver = Callable[[list[tuple[Any, Delta | BaseException]]], None]


@dataclass(frozen=True, slots=True)
class EngineLimits:
    max_seqs: int = 32  # sequences decoded together
    max_cached_tokens: int = 131072  # rows x length of the batch's KV cache, padding included
    max_waiting: int = 512  # beyond it a request is refused with 429
    prefill_budget: int = 4096  # prompt tokens prefilled in one step (a longer prompt goes alone)
    prefix_cache_tokens: int = 16384  # prompt KV kept for later prompts with the same start (0: off)


@dataclass(eq=False, slots=True)
class Sequence:
    """One choice being generated. `sink` is the consumer (an asyncio queue), `deliver` hands it results on its
    loop. Only the engine thread touches the fields below `cancelled`."""

    index: int
    prompt_ids: list[int]
    params: SamplingParams
    sink: Any
    deliver: Deliver
    cancelled: bool = False
    stream: TextStream | None = None
    generator: Any = None
    out: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    last: int = -1
    pending_ids: list[int] = field(default_factory=list)
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)
    cached: tuple[int, list[tuple[Any, Any]]] | None = None  # a prefix found in the prefix cache
    json: JsonObject | None = None  # response_format json_object: the text so far, as a JSON recognizer
