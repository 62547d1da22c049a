"""Runtimes: Hugging Face encoders with `transformers` on the CPU — sequence classification, token classification,
fill-mask and text embedding (mean pooling; normalized when the directory is a sentence-transformers model that
normalizes), the task read from the config as KServe's Hugging Face server does (`--task` overrides), text
tokenized on the server. Weights load from `--model_dir` (or `--model_id` already in the local cache), never from
the network."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelplane.model.base import Headers
from modelplane.model.generative import EmbeddingModel
from modelplane.protocol.errors import InvalidInput, ModelLoadError, ModelNotReady
from modelplane.protocol.ids import new_id
from modelplane.protocol.types import InferRequest, InferResponse, Tensor, TensorSpec
from modelplane.runtimes.tensor import threads

TASKS = ("sequence_classification", "token_classification", "fill_mask", "text_embedding")
_BY_SUFFIX = {
    "ForSequenceClassification": "sequence_classification",
    "ForTokenClassification": "token_classification",
    "ForMaskedLM": "fill_mask",
}
_OUTPUTS = {
    "sequence_classification": TensorSpec("output-0", "INT64", [-1]),
    "token_classification": TensorSpec("output-0", "INT64", [-1, -1]),
    "fill_mask": TensorSpec("output-0", "BYTES", [-1]),
    "text_embedding": TensorSpec("output-0", "FP32", [-1, -1]),
}


def infer_task(config: dict[str, Any]) -> str:
    """The task from the config's architectures; a bare encoder is an embedding model."""
    for arch in config.get("architectures") or []:
        for suffix, task in _BY_SUFFIX.items():
            if arch.endswith(suffix):
                return task
        if arch.endswith(("ForCausalLM", "ForConditionalGeneration")):
            raise ModelLoadError(f"{arch} is a generative model; this runtime serves encoders ({', '.join(TASKS)})")
    return "text_embedding"


class HuggingFaceModel(EmbeddingModel):
    """Encoders over V1/V2 and, for the text_embedding (and cross-encoder) tasks, OpenAI's embeddings and rerank."""

    def __init__(self, name: str, model_dir: str | Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.options = options or {}
        source = model_dir or self.options.get("model_id")
        if not source:
            raise ValueError("the huggingface runtime needs --model_dir or --model_id")
        self.source = str(source)
        self.task = str(self.options.get("task") or "")
        if self.task and self.task not in TASKS:
            raise ValueError(f"--task {self.task!r} is not served by this runtime ({', '.join(TASKS)})")
        self.max_length = int(self.options.get("max_length") or 512)
        self.model: Any = None
        self.tokenizer: Any = None
        self.normalize = False

    def load(self) -> bool:
        import torch
        import transformers as tf

        torch.set_num_threads(threads(self.options))
        try:
            config = tf.AutoConfig.from_pretrained(self.source, local_files_only=True).to_dict()
            task = self.task or infer_task(config)
            cls = {
                "sequence_classification": tf.AutoModelForSequenceClassification,
                "token_classification": tf.AutoModelForTokenClassification,
                "fill_mask": tf.AutoModelForMaskedLM,
                "text_embedding": tf.AutoModel,
            }[task]
            self.tokenizer = tf.AutoTokenizer.from_pretrained(self.source, local_files_only=True)
            model = cls.from_pretrained(self.source, local_files_only=True).eval()
        except ModelLoadError:
            raise
        except Exception as exc:  # transformers raises OSError / ValueError with its own reason
            raise ModelLoadError(f"cannot load {self.source} with transformers: {exc}") from exc
        modules = Path(self.source) / "modules.json"
        if modules.is_file():  # sentence-transformers: its pipeline says whether embeddings are normalized
            self.normalize = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
        self.task, self.model, self.ready = task, model, True
        self.created = int(time.time())
        return True

    def unload(self) -> None:
        self.model = self.tokenizer = None
        self.ready = False

    def input_metadata(self) -> list[TensorSpec]:
        return [TensorSpec("text", "BYTES", [-1])]

    def output_metadata(self) -> list[TensorSpec]:
        return [_OUTPUTS[self.task]] if self.task else []

    def predict(self, payload: Any, headers: Headers | None = None) -> Any:
        model, tokenizer = self.model, self.tokenizer
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        texts = _texts(payload)
        result = self._run(model, tokenizer, texts)
        if isinstance(payload, InferRequest):
            array = np.asarray(result, dtype=object) if self.task == "fill_mask" else np.asarray(result)
            out = Tensor.from_numpy("output-0", array)
            return InferResponse(model_name=self.name, outputs=[out], id=payload.id or new_id())
        return {"predictions": result.tolist() if isinstance(result, np.ndarray) else result}

    def _run(self, model: Any, tokenizer: Any, texts: list[str]) -> Any:
        import torch

        enc = tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            out = model(**enc)
        mask = enc["attention_mask"]
        if self.task == "text_embedding":
            hidden = out.last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled.numpy().astype(np.float32)
        if self.task == "sequence_classification":
            return out.logits.argmax(-1).numpy().astype(np.int64)
        ids = out.logits.argmax(-1)
        if self.task == "token_classification":
            return torch.where(mask.bool(), ids, torch.full_like(ids, -1)).numpy().astype(np.int64)
        masked = enc["input_ids"] == tokenizer.mask_token_id  # fill_mask: the predicted token at each mask
        filled = []
        for row in range(len(texts)):
            tokens = ids[row][masked[row]].tolist()
            if not tokens:
                raise InvalidInput(f"instance {row} has no {tokenizer.mask_token} to fill")
            words = [tokenizer.decode([t]).strip() for t in tokens]
            filled.append(words[0] if len(words) == 1 else words)
        return filled

    # --- OpenAI embeddings and rerank (on a worker thread: the forward pass is long) ------------------------
    async def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        model, tokenizer = self.model, self.tokenizer
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        if self.task != "text_embedding":
            raise InvalidInput(f"model {self.name} is a {self.task} model, not an embedding model", param="model")
        vectors = await asyncio.to_thread(self._run, model, tokenizer, list(texts))
        return vectors, self._tokens(tokenizer, list(texts))

    async def rerank(self, query: str, documents: Sequence[str]) -> tuple[list[float], int]:
        """Cross-encoders (sequence classification) score each (query, document) pair; embedding models score by
        cosine similarity."""
        model, tokenizer = self.model, self.tokenizer
        if model is None:
            raise ModelNotReady(self.name, "it was unloaded")
        docs = list(documents)
        if self.task == "sequence_classification":
            scores = await asyncio.to_thread(self._cross_scores, model, tokenizer, query, docs)
            return scores, self._tokens(tokenizer, [query] * len(docs), docs)
        if self.task != "text_embedding":
            raise InvalidInput(f"model {self.name} is a {self.task} model and cannot rerank", param="model")
        vectors = await asyncio.to_thread(self._run, model, tokenizer, [query, *docs])
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [float(x) for x in unit[1:] @ unit[0]], self._tokens(tokenizer, [query, *docs])

    def _cross_scores(self, model: Any, tokenizer: Any, query: str, docs: list[str]) -> list[float]:
        import torch

        enc = tokenizer(
            [query] * len(docs), docs, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            logits = model(**enc).logits
        scores = logits[:, 0] if logits.shape[1] == 1 else torch.softmax(logits, -1)[:, -1]
        return [float(x) for x in scores]

    def _tokens(self, tokenizer: Any, texts: list[str], pairs: list[str] | None = None) -> int:
        enc = (
            tokenizer(texts, pairs, truncation=True, max_length=self.max_length)
            if pairs
            else tokenizer(texts, truncation=True, max_length=self.max_length)
        )
        return sum(len(ids) for ids in enc["input_ids"])


def _texts(payload: Any) -> list[str]:
    """V1 `instances` (or `inputs`) of strings, or one V2 BYTES input."""
    if isinstance(payload, InferRequest):
        if len(payload.inputs) != 1 or payload.inputs[0].datatype != "BYTES":
            raise InvalidInput("send the text as one BYTES input")
        values = payload.inputs[0].data.ravel().tolist()
        return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values]
    if not isinstance(payload, dict):
        raise InvalidInput('send JSON with "instances": a list of strings')
    data = payload.get("instances", payload.get("inputs"))
    if not isinstance(data, list) or not data or not all(isinstance(t, str) for t in data):
        raise InvalidInput('"instances" must be a non-empty list of strings')
    return data
