"""LLM runtime: the continuous-batching engine — one thread stepping a causal LM. Each step admits waiting
sequences within a prompt-token budget and the bounds on running sequences and cached positions, prefills them
together, then runs one decode step for every running sequence; finished or cancelled sequences leave between
steps. Results go back to the event loop that asked, one wake-up per step."""

from __future__ import annotations

import inspect
import os
import threading
from collections import deque
from typing import Any

from modelplane.model.generative import EngineStats
from modelplane.protocol.errors import InvalidInput, Overloaded
from modelplane.protocol.generation import Delta, SamplingParams, TokenLogprob
from modelplane.runtimes.llm.json_mode import JsonObject, acceptor
from modelplane.runtimes.llm.kv import BatchCache
from modelplane.runtimes.llm.prefix import PrefixCache
from modelplane.runtimes.llm.sampling import choose, choose_allowed, logprobs_of, needs_rowwise
from modelplane.runtimes.llm.sequence import EngineLimits, Sequence
from modelplane.runtimes.llm.text import TextStream


class Engine:
    def __init__(self, model: Any, tokenizer: Any, limits: EngineLimits, context: int, eos: set[int]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.limits = limits
        self.context = context
        self.eos = eos
        self._inbox: deque[Sequence] = deque()
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._batch = BatchCache()
        self.prefix = PrefixCache(limits.prefix_cache_tokens)
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._generator: Any = None
        self._admitting: list[Sequence] = []  # being prefilled: they get the error if the forward fails
        self._inbox_tokens = 0  # prompt tokens in the inbox (under the lock)
        self._queued = (0, 0)  # waiting sequences and their prompt tokens, published by the engine thread
        self.steps = 0
        self.generated = 0  # tokens produced, whether or not anyone read them
        self._texts: dict[int, str] = {}  # token id -> its text alone (JSON mode's checks)
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"  # renamed in transformers 5
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    # --- any thread -----------------------------------------------------------------------------------------
    def check(self, prompt_tokens: int, params: SamplingParams) -> None:
        """Refuse a request that cannot fit the model's context (before it queues)."""
        wanted = prompt_tokens + (params.max_tokens or 1)
        if prompt_tokens >= self.context or wanted > self.context:
            raise InvalidInput(
                f"This model's maximum context length is {self.context} tokens. However, you requested {wanted} "
                f"tokens ({prompt_tokens} in the messages, {params.max_tokens or 0} in the completion). Please "
                "reduce the length of the messages or completion.",
                param="max_tokens" if params.max_tokens else "messages",
            )
        if prompt_tokens > self.limits.max_cached_tokens:
            raise InvalidInput(f"the prompt's {prompt_tokens} tokens exceed the server's KV-cache bound")

    def submit(self, seqs: list[Sequence]) -> None:
        with self._wake:
            if len(self._inbox) + len(self._waiting) + len(seqs) > self.limits.max_waiting:
                raise Overloaded("too many requests are waiting for the model; retry shortly", 1.0)
            self._inbox.extend(seqs)
            self._inbox_tokens += sum(len(s.prompt_ids) for s in seqs)
            self._wake.notify()

    def cancel(self, seqs: list[Sequence]) -> None:
        for seq in seqs:
            seq.cancelled = True
        with self._wake:
            self._wake.notify()

    def stats(self) -> EngineStats:
        """Read from any thread: counts the engine thread publishes once a step, plus what is in the inbox."""
        waiting, tokens = self._queued
        with self._wake:
            waiting, tokens = waiting + len(self._inbox), tokens + self._inbox_tokens
        use = self._batch.cells() / self.limits.max_cached_tokens
        return EngineStats(len(self._running), waiting, use, self.generated, self.prefix.hit_tokens, tokens)

    def start(self) -> None:
        import torch

        self._generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
        self._thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- the engine thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (self._stopping or self._inbox or self._running or self._waiting):
                        self._wake.wait()
                    if self._stopping:
                        break
                    self._waiting.extend(self._inbox)
                    self._inbox.clear()
                    self._inbox_tokens = 0
                out: list[tuple[Any, Delta | BaseException]] = []
                try:
                    self._step(out)
                except Exception as exc:  # the model failed: every sequence in the batch gets the error
                    for seq in [*self._running, *self._admitting]:
                        out.append((seq, exc))
                    self._running, self._batch = [], BatchCache()
                self._queued = (len(self._waiting), sum(len(s.prompt_ids) for s in self._waiting))
                self._flush(out)
        for seq in [*self._running, *self._waiting, *self._inbox]:
            self._flush([(seq, RuntimeError("the model was unloaded"))])

    def _step(self, out: list[tuple[Any, Delta | BaseException]]) -> None:
        self._waiting = deque(s for s in self._waiting if not s.cancelled)
        if any(s.cancelled for s in self._running):
            keep = [i for i, s in enumerate(self._running) if not s.cancelled]
            self._running = [self._running[i] for i in keep]
            self._batch.keep(keep)
        new = self._admit()
        if new:
            import torch

            self._admitting = new
            misses = [s for s in new if s.cached is None]
            hits = [s for s in new if s.cached is not None]
            logits = ([self._prefill(misses)] if misses else []) + [self._prefill_cached(s) for s in hits]
            self._running.extend(misses + hits)  # the order their rows joined the batch
            self._admitting = []
            self._advance(torch.cat(logits), len(self._running) - len(new), out)
        if self._running:
            self.steps += 1
            logits = self._decode()
            self._advance(logits, 0, out)

    def _admit(self) -> list[Sequence]:
        new: list[Sequence] = []
        budget, rows, longest = self.limits.prefill_budget, self._batch.rows, self._batch.length
        while self._waiting and rows + len(new) < self.limits.max_seqs:
            head = self._waiting[0]
            if head.cached is None and self.prefix.capacity:
                head.cached = self.prefix.lookup(head.prompt_ids)
            size = len(head.prompt_ids) - (head.cached[0] if head.cached else 0)
            if new and size > budget:
                break
            longest = max(longest, len(head.prompt_ids))
            if (rows or new) and (rows + len(new) + 1) * (longest + 1) > self.limits.max_cached_tokens:
                break
            new.append(self._waiting.popleft())
            budget -= size
        return new

    def _prefill(self, seqs: list[Sequence]) -> Any:
        """Prefill prompts together (left-padded); their rows join the batch and their KV the prefix cache."""
        import torch
        from transformers import DynamicCache

        width = max(len(s.prompt_ids) for s in seqs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(s.prompt_ids)) + s.prompt_ids for s in seqs], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in seqs])
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        cache = DynamicCache()
        result = self._forward(ids, mask, positions, cache)
        if self.prefix.capacity:
            for row, seq in enumerate(seqs):
                start = width - len(seq.prompt_ids)
                layers = [
                    (layer.keys[row : row + 1, :, start:], layer.values[row : row + 1, :, start:])
                    for layer in cache.layers
                ]
                self.prefix.store(seq.prompt_ids, layers)
        self._batch.join(cache, mask)
        for seq in seqs:
            self._start(seq)
        return result.logits[:, -1, :].float()

    def _prefill_cached(self, seq: Sequence) -> Any:
        """Prefill only what follows the cached prefix of one prompt."""
        import torch
        from transformers import DynamicCache

        assert seq.cached is not None
        length, layers = seq.cached
        seq.cached = None  # the cache's tensors are not held past this step
        cache = DynamicCache()
        for index, (keys, values) in enumerate(layers):
            cache.update(keys, values, index)
        rest = seq.prompt_ids[length:]
        total = len(seq.prompt_ids)
        mask = torch.ones((1, total), dtype=torch.long)
        positions = torch.arange(length, total, dtype=torch.long).unsqueeze(0)
        result = self._forward(torch.tensor([rest], dtype=torch.long), mask, positions, cache)
        self.prefix.hit_tokens += length
        self.prefix.store(seq.prompt_ids, [(layer.keys, layer.values) for layer in cache.layers])
        self._batch.join(cache, mask)
        self._start(seq)
        return result.logits[:, -1, :].float()

    def _start(self, seq: Sequence) -> None:
        import torch

        seq.stream = TextStream(self.tokenizer, seq.prompt_ids, seq.params.stop)
        seq.json = JsonObject() if seq.params.json_object else None
        seed = seq.params.seed
        seq.generator = self._generator if seed is None else torch.Generator().manual_seed(seed + seq.index)

    def _decode(self) -> Any:
        import torch

        positions = self._batch.positions()
        mask = self._batch.grow()
        ids = torch.tensor([[s.last] for s in self._running], dtype=torch.long)
        return self._forward(ids, mask, positions, self._batch.cache).logits[:, -1, :].float()

    def _forward(self, ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs = {self._cache_kw: cache}
        if self._keep_kw:
            kwargs[self._keep_kw] = 1  # only the last position's logits
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)

    def _advance(self, logits: Any, first: int, out: list[tuple[Any, Delta | BaseException]]) -> None:
        """Choose a token for rows `first`.. of the batch, hand out what they produced, drop finished rows."""
        import torch

        seqs = self._running[first:]
        rowwise = any(needs_rowwise(s.params) for s in seqs)
        greedy = None if rowwise else torch.argmax(logits, dim=-1).tolist()
        done: set[int] = set()
        for i, seq in enumerate(seqs):
            row = logits[i]
            if seq.json is not None:
                allowed = acceptor(seq.json, self._text_of)
                chosen = choose_allowed(row, seq.params, seq.generator, seq.counts, allowed)
                reason = "stop" if chosen is None else self._accept(seq, chosen, row)
            else:
                token = greedy[i] if greedy is not None else choose(row, seq.params, seq.generator, seq.counts)
                reason = self._accept(seq, token, row)
            assert seq.stream is not None
            piece = seq.stream.take(final=reason is not None)
            if piece or reason is not None:
                out.append((seq, self._delta(seq, piece, reason)))
            if reason is not None:
                done.add(first + i)
        if done:
            keep = [i for i in range(len(self._running)) if i not in done]
            self._running = [self._running[i] for i in keep]
            self._batch.keep(keep)

    def _accept(self, seq: Sequence, token: int, row: Any) -> str | None:
        """Record the token; why the sequence ends, if it does."""
        assert seq.stream is not None
        params = seq.params
        if token in self.eos and not params.ignore_eos:
            return "stop"
        seq.last = token
        seq.out += 1
        self.generated += 1
        seq.counts[token] = seq.counts.get(token, 0) + 1
        seq.pending_ids.append(token)
        if params.logprobs is not None:
            chosen, top = logprobs_of(row, token, params.logprobs)
            decode = self.tokenizer.decode
            seq.pending_logprobs.append(TokenLogprob(decode([token]), chosen, [(decode([t]), lp) for t, lp in top]))
        seq.stream.push(token)
        if seq.stream.stopped:
            return "stop"
        if seq.json is not None and seq.json.feed(self._text_of(token)) and seq.json.done:
            return "stop"  # the JSON object is complete
        if params.max_tokens is not None and seq.out >= params.max_tokens:
            return "length"
        if len(seq.prompt_ids) + seq.out >= self.context:
            return "length"
        return None

    def _text_of(self, token: int) -> str:
        text = self._texts.get(token)
        if text is None:
            text = self._texts[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return text

    @staticmethod
    def _delta(seq: Sequence, text: str, reason: str | None) -> Delta:
        delta = Delta(
            index=seq.index,
            text=text,
            token_ids=seq.pending_ids,
            prompt_tokens=len(seq.prompt_ids),
            completion_tokens=seq.out,
            finish_reason=reason,
            logprobs=seq.pending_logprobs if seq.params.logprobs is not None else None,
        )
        seq.pending_ids, seq.pending_logprobs = [], []
        return delta

    @staticmethod
    def _flush(out: list[tuple[Any, Delta | BaseException]]) -> None:
        by_deliver: dict[Any, list[tuple[Any, Delta | BaseException]]] = {}
        for seq, item in out:
            by_deliver.setdefault(seq.deliver, []).append((seq.sink, item))
        for deliver, items in by_deliver.items():
            deliver(items)
