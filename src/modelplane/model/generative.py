"""Model API: what a model offers the OpenAI-compatible and V2 generate routes — text generation (streamed as
deltas), embeddings and reranking. A runtime subclasses the capability it has; the server checks by type."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from modelplane.model.base import Model
from modelplane.protocol.generation import Delta, GenerationRequest


class EngineStats(NamedTuple):
    running: int = 0  # sequences being decoded
    waiting: int = 0  # sequences queued for a slot
    kv_cache_usage: float = 0.0  # share of the KV-cache bound in use (0..1)
    generated_tokens: int = 0  # tokens the engine produced since it started, read or not
    prefix_hit_tokens: int = 0  # prompt tokens taken from the prefix cache instead of prefilled
    waiting_tokens: int = 0  # prompt tokens of the sequences waiting for a slot


class GenerativeModel(Model):
    """A model that continues text. `generate` yields the deltas of all `n` choices interleaved, each choice's
    last delta carrying its finish reason; closing the iterator early cancels what is still running."""

    created: int = 0  # when the model was loaded (seconds), as OpenAI's model objects report

    @property
    def context_length(self) -> int:
        raise NotImplementedError

    def chat_prompt(self, messages: list[dict[str, Any]], template: str | None = None) -> str:
        """The prompt a chat becomes under the model's chat template (or `template`), ready for the assistant."""
        raise NotImplementedError

    def count_tokens(self, prompt: str | list[int]) -> int:
        raise NotImplementedError

    def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        raise NotImplementedError

    def stats(self) -> EngineStats:
        """What the engine is doing — for metrics and LLM autoscaling."""
        return EngineStats()


class EmbeddingModel(Model):
    """A model that turns texts into vectors (OpenAI's embeddings) and scores documents against a query."""

    created: int = 0

    async def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """One vector per text, and the tokens the texts took."""
        raise NotImplementedError

    async def rerank(self, query: str, documents: Sequence[str]) -> tuple[list[float], int]:
        """A relevance score per document (higher is more relevant), and the tokens it took."""
        raise NotImplementedError
