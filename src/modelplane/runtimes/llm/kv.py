"""LLM runtime: the running batch's KV cache — one transformers `DynamicCache` whose rows are the running
sequences, left-padded to a common length, with the attention mask saying which positions are real. Sequences
join (their prefilled rows padded and appended), leave (rows selected away) and the leading columns no row uses
any more are dropped, so the cache is only as long as the longest running sequence."""

from __future__ import annotations

from typing import Any


def _pad_left(tensor: Any, length: int, dim: int) -> Any:
    import torch.nn.functional as F

    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - dim) + [missing, 0]  # F.pad counts from the last dimension
    return F.pad(tensor, pad)


class BatchCache:
    def __init__(self) -> None:
        self.cache: Any = None  # DynamicCache
        self.mask: Any = None  # [rows, length] int64: 1 where a position holds a real token

    @property
    def rows(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[0])

    @property
    def length(self) -> int:
        return 0 if self.mask is None else int(self.mask.shape[1])

    def cells(self) -> int:
        """Cached positions held, padding included (what the memory bound counts); safe to read from any thread."""
        mask = self.mask
        return 0 if mask is None else int(mask.shape[0] * mask.shape[1])

    def join(self, cache: Any, mask: Any) -> None:
        """Append the rows of a freshly prefilled cache."""
        import torch

        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        length = max(self.length, int(mask.shape[1]))
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_pad_left(mine.keys, length, 2), _pad_left(theirs.keys, length, 2)], 0)
            mine.values = torch.cat([_pad_left(mine.values, length, 2), _pad_left(theirs.values, length, 2)], 0)
        self.mask = torch.cat([_pad_left(self.mask, length, 1), _pad_left(mask, length, 1)], 0)

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows, in this order (the others' sequences left the batch)."""
        import torch

        if not rows:
            self.cache = self.mask = None
            return
        if rows == list(range(self.rows)):
            return
        index = torch.tensor(rows, dtype=torch.long)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self.mask = self.mask.index_select(0, index)
        self.trim()

    def trim(self) -> None:
        """Drop leading columns that are padding in every row."""
        used = self.mask.any(0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first > 0:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]
            self.mask = self.mask[:, first:]

    def positions(self) -> Any:
        """Each row's next position: how many real tokens it holds."""
        return self.mask.sum(1, keepdim=True)

    def grow(self) -> Any:
        """The mask for a decode step (one more real position in every row), kept as the new mask."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.rows, 1))], 1)
        return self.mask
