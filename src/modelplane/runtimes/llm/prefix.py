"""LLM runtime: the prefix cache — prompts' KV kept after their prefill, found again by any later prompt that
starts with the same tokens (a shared system prompt, a conversation's history), so only the rest is prefilled.
Keys are rolling hashes of whole BLOCK-token blocks; every block boundary of a stored prompt is a key into it (a
slice of one stored tensor, no copy). Bounded by tokens held, least recently used prompt evicted first."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

BLOCK = 16


def block_keys(ids: list[int]) -> list[int]:
    """Key of each whole-block prefix: keys[k] covers ids[: (k + 1) * BLOCK]."""
    keys, h = [], 0
    for end in range(BLOCK, len(ids) + 1, BLOCK):
        h = hash((h, tuple(ids[end - BLOCK : end])))
        keys.append(h)
    return keys


@dataclass(slots=True)
class _Stored:
    layers: list[tuple[Any, Any]]  # per layer (keys, values), [1, heads, length, head_dim]
    length: int
    keys: list[int]


class PrefixCache:
    def __init__(self, capacity_tokens: int) -> None:
        self.capacity = capacity_tokens
        self.held = 0
        self._prompts: OrderedDict[int, _Stored] = OrderedDict()  # by the key of their longest block
        self._index: dict[int, int] = {}  # block key -> the stored prompt holding it
        self.hit_tokens = 0  # prompt tokens not prefilled thanks to the cache

    def lookup(self, ids: list[int]) -> tuple[int, list[tuple[Any, Any]]] | None:
        """The longest cached prefix of `ids` that leaves at least one token to prefill: (length, layers)."""
        keys = block_keys(ids[:-1])
        for k in range(len(keys) - 1, -1, -1):
            owner = self._index.get(keys[k])
            if owner is not None:
                stored = self._prompts[owner]
                self._prompts.move_to_end(owner)
                length = (k + 1) * BLOCK
                return length, [(kk[:, :, :length], vv[:, :, :length]) for kk, vv in stored.layers]
        return None

    def store(self, ids: list[int], layers: list[tuple[Any, Any]]) -> None:
        """Keep a prefilled prompt's KV (`layers` cover exactly `ids`; they are copied)."""
        keys = block_keys(ids)
        if not keys or self.capacity <= 0 or len(keys) * BLOCK > self.capacity:
            return
        if keys[-1] in self._index:
            self._prompts.move_to_end(self._index[keys[-1]])
            return
        length = len(keys) * BLOCK
        kept = [(k[:, :, :length].clone(), v[:, :, :length].clone()) for k, v in layers]
        self._prompts[keys[-1]] = _Stored(kept, length, keys)
        for key in keys:
            self._index.setdefault(key, keys[-1])
        self.held += length
        while self.held > self.capacity and self._prompts:
            self._evict()

    def _evict(self) -> None:
        owner, stored = self._prompts.popitem(last=False)
        self.held -= stored.length
        for key in stored.keys:
            if self._index.get(key) == owner:
                del self._index[key]
        for other_owner, other in self._prompts.items():  # keys it shared now point at another holder
            for key in other.keys:
                self._index.setdefault(key, other_owner)
