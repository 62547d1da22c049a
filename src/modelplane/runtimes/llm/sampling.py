"""LLM runtime: choosing each sequence's next token from its logits — penalties, temperature, top-k, top-p, a
per-sequence seeded generator, and log-probabilities of the model's own distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelplane.protocol.generation import SamplingParams


def needs_rowwise(params: SamplingParams) -> bool:
    """Whether a row needs more than an argmax."""
    return (
        params.temperature > 0
        or params.presence_penalty != 0
        or params.frequency_penalty != 0
        or params.logprobs is not None
        or params.json_object
    )


def penalize(logits: Any, params: SamplingParams, counts: dict[int, int]) -> Any:
    """OpenAI's presence and frequency penalties over the tokens this sequence generated so far."""
    import torch

    if not counts or (params.presence_penalty == 0 and params.frequency_penalty == 0):
        return logits
    ids = torch.tensor(list(counts), dtype=torch.long)
    freq = torch.tensor(list(counts.values()), dtype=logits.dtype)
    logits = logits.clone()
    logits[ids] -= params.frequency_penalty * freq + params.presence_penalty
    return logits


def choose(logits: Any, params: SamplingParams, generator: Any, counts: dict[int, int]) -> int:
    """The next token of one sequence from its (vocabulary-sized, float) logits."""
    import torch

    logits = penalize(logits, params, counts)
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if params.top_k > 0 and params.top_k < logits.numel():
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        drop = cumulative - sorted_probs > params.top_p  # keep the smallest set whose mass reaches top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def logprobs_of(logits: Any, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """The chosen token's log-probability under the model's distribution, and the `top` most likely tokens."""
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    best: list[tuple[int, float]] = []
    if top > 0:
        values, ids = torch.topk(logp, min(top, logp.numel()))
        best = [(int(i), float(v)) for i, v in zip(ids, values, strict=True)]
    return float(logp[token]), best


def choose_allowed(
    logits: Any, params: SamplingParams, generator: Any, counts: dict[int, int], allowed: Callable[[int], bool]
) -> int | None:
    """The next token among those `allowed` says may come next (constrained decoding): sample as `choose` does and
    draw again without each refused token; after TRIES refusals, the most likely allowed token. None: no token may
    follow."""
    import torch

    logits = penalize(logits, params, counts)
    if params.temperature > 0:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        for _ in range(TRIES):
            if float(probs.sum()) <= 0:
                break
            token = int(torch.multinomial(probs, 1, generator=generator))
            if allowed(token):
                return token
            probs[token] = 0.0
    for token in torch.argsort(logits, descending=True).tolist():
        if allowed(token):
            return token
    return None


TRIES = 16
