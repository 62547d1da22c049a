"""The LLM runtime's prefix cache with stand-in tensors: the longest whole-block prefix is found (never the whole
prompt: one token is always left to prefill), every block boundary of a stored prompt is a key, and the least
recently used prompts go first when the token bound is reached."""

from __future__ import annotations

import torch

from modelplane.runtimes.llm.prefix import BLOCK, PrefixCache


def kv(length: int, mark: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.full((1, 2, length, 4), mark), torch.full((1, 2, length, 4), -mark))]


def test_the_longest_block_prefix_is_found_and_one_token_is_left() -> None:
    cache = PrefixCache(1000)
    prompt = list(range(40))
    cache.store(prompt, kv(40, 1.0))
    assert cache.held == 32  # two whole blocks
    length, layers = cache.lookup([*prompt, 99, 98])  # type: ignore[misc]
    assert length == 32 and layers[0][0].shape == (1, 2, 32, 4) and float(layers[0][0][0, 0, 0, 0]) == 1.0
    assert cache.lookup(prompt[:32])[0] == 16  # type: ignore[index]  # 32 tokens: the last must be prefilled
    assert cache.lookup(prompt[:20] + [7] * 20)[0] == 16  # type: ignore[index]  # diverges in block 2
    assert cache.lookup([5, *prompt]) is None
    assert cache.lookup(prompt[:BLOCK]) is None


def test_least_recently_used_prompts_are_evicted_at_the_bound() -> None:
    cache = PrefixCache(64)
    a, b, c = [1] * 33, [2] * 33, [3] * 33
    cache.store(a, kv(33, 1.0))
    cache.store(b, kv(33, 2.0))
    assert cache.lookup([*a, 0]) is not None  # a is now the most recent
    cache.store(c, kv(33, 3.0))
    assert cache.held == 64
    assert cache.lookup([*b, 0]) is None and cache.lookup([*a, 0]) is not None and cache.lookup([*c, 0]) is not None


def test_a_stored_tensor_is_a_copy_and_storing_twice_keeps_one() -> None:
    cache = PrefixCache(1000)
    layers = kv(32, 1.0)
    cache.store(list(range(32)), layers)
    layers[0][0].fill_(9.0)
    assert float(cache.lookup(list(range(33)))[1][0][0].max()) == 1.0  # type: ignore[index]
    cache.store(list(range(32)), kv(32, 5.0))
    assert cache.held == 32
