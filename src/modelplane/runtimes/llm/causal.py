"""LLM runtime: a transformers causal LM served by the continuous-batching engine — loading (local files only),
chat templates, tokenization, and the asyncio side of a request (submit, stream deltas, cancel on close)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from modelplane.model.generative import EngineStats, GenerativeModel
from modelplane.protocol.errors import InferenceError, InvalidInput, ModelLoadError, ModelNotReady
from modelplane.protocol.generation import Delta, GenerationRequest
from modelplane.runtimes.llm.engine import Engine
from modelplane.runtimes.llm.sequence import EngineLimits, Sequence
from modelplane.runtimes.tensor import threads

GENERATIVE_TASKS = ("text_generation", "text2text_generation")


def _int_option(options: dict[str, Any], name: str, default: int, minimum: int = 1) -> int:
    value = options.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--{name} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"--{name} must be at least {minimum}, got {number}")
    return number


class CausalLMModel(GenerativeModel):
    """Options (KServe's and vLLM's spellings): --max_model_len, --max_num_seqs, --max_num_batched_tokens,
    --kv_cache_tokens, --max_waiting, --prefix_cache_tokens (0: off), --dtype (float32 | bfloat16 | auto),
    --intra_op_threads."""

    def __init__(self, name: str, model_dir: str | Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.options = options or {}
        source = model_dir or self.options.get("model_id")
        if not source:
            raise ValueError("the huggingface runtime needs --model_dir or --model_id")
        self.source = str(source)
        self.limits = EngineLimits(
            max_seqs=_int_option(self.options, "max_num_seqs", 32),
            max_cached_tokens=_int_option(self.options, "kv_cache_tokens", 131072),
            max_waiting=_int_option(self.options, "max_waiting", 512),
            prefill_budget=_int_option(self.options, "max_num_batched_tokens", 4096),
            prefix_cache_tokens=_int_option(self.options, "prefix_cache_tokens", 16384, minimum=0),
        )
        self.dtype = str(self.options.get("dtype") or "float32")
        if self.dtype not in ("float32", "bfloat16", "auto"):
            raise ValueError(f"--dtype must be float32, bfloat16 or auto, got {self.dtype!r}")
        self.engine: Engine | None = None
        self.tokenizer: Any = None
        self._context = 0

    # --- lifecycle --------------------------------------------------------------------------------------------
    def load(self) -> bool:
        import torch
        import transformers as tf

        torch.set_num_threads(threads(self.options))
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(self.source, local_files_only=True)
            dtype = torch.float32 if self.dtype == "float32" else torch.bfloat16 if self.dtype == "bfloat16" else "auto"
            model = tf.AutoModelForCausalLM.from_pretrained(self.source, local_files_only=True, dtype=dtype).eval()
        except Exception as exc:  # transformers raises OSError / ValueError with its own reason
            raise ModelLoadError(f"cannot load {self.source} as a causal LM with transformers: {exc}") from exc
        config = model.config
        native = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
        self._context = min(native, _int_option(self.options, "max_model_len", native))
        eos: set[int] = set()
        for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
            eos.update(value if isinstance(value, list) else [] if value is None else [value])
        self.tokenizer = tokenizer
        self.engine = Engine(model, tokenizer, self.limits, self._context, eos)
        self.engine.start()
        self.created = int(time.time())
        self.ready = True
        return True

    def unload(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.stop()
        self.ready = False

    # --- what the routes ask ----------------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._context

    def chat_prompt(self, messages: list[dict[str, Any]], template: str | None = None) -> str:
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, chat_template=template
                )
            )
        except ValueError as exc:  # no template, or a template that refuses these messages
            raise InvalidInput(f"cannot apply the chat template: {exc}", param="messages") from None
        except Exception as exc:  # jinja2's errors: a bad template the client sent
            raise InvalidInput(
                f"the chat template failed: {type(exc).__name__}: {exc}", param="chat_template"
            ) from None

    def count_tokens(self, prompt: str | list[int]) -> int:
        return len(self._ids(prompt))

    def _ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            vocab = len(self.tokenizer)
            if any(not 0 <= t < vocab for t in prompt):
                raise InvalidInput(f"prompt token ids must be in [0, {vocab})", param="prompt")
            return prompt
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        engine = self.engine
        if engine is None:
            raise ModelNotReady(self.name, "it was unloaded")
        ids = self._ids(request.prompt)
        if not ids:
            raise InvalidInput("the prompt is empty", param="prompt")
        engine.check(len(ids), request.params)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()

        def deliver(items: list[tuple[Any, Delta | BaseException]]) -> None:
            loop.call_soon_threadsafe(_put_all, items)

        seqs = [Sequence(i, ids, request.params, queue, deliver) for i in range(request.n)]
        engine.submit(seqs)
        echo = None
        if request.echo:
            echo = request.prompt if isinstance(request.prompt, str) else self.tokenizer.decode(ids)
        started: set[int] = set()
        remaining = request.n
        try:
            while remaining:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise InferenceError(f"{type(item).__name__}: {item}")
                if echo is not None and item.index not in started:
                    started.add(item.index)
                    item.prompt_text = echo
                if item.finish_reason is not None:
                    remaining -= 1
                yield item
        finally:
            if remaining:
                engine.cancel(seqs)  # the client went away or the caller stopped reading: free the slots now

    def stats(self) -> EngineStats:
        engine = self.engine
        return engine.stats() if engine is not None else EngineStats()


def _put_all(items: list[tuple[Any, Delta | BaseException]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)
