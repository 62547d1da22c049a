"""The Hugging Face encoder runtime on all-MiniLM-L6-v2 (shipped in a package) and random-weight tiny BERTs built in
the test: the task read from the config, answers equal to running the same model directly, embeddings that mean
what they should, and bad inputs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import tensor_models as tm

from modelplane.protocol.errors import InvalidInput, ModelLoadError
from modelplane.protocol.types import InferRequest, Tensor
from modelplane.runtimes import detect_runtime
from modelplane.runtimes.huggingface import HuggingFaceModel

TEXTS = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]


def loaded(path: Path, **options: str) -> HuggingFaceModel:
    model = HuggingFaceModel("m", path, {"intra_op_threads": "1", **options})
    assert model.load()
    return model


def direct(path: Path, head: str, texts: list[str]) -> tuple[object, object]:
    """The same model run directly with transformers: (logits argmax, tokenized input)."""
    import torch
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = getattr(tf, head).from_pretrained(str(path), local_files_only=True).eval()
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.argmax(-1), enc


def test_minilm_embeddings_are_normalized_and_put_like_sentences_together() -> None:
    assert detect_runtime(tm.minilm()) == "huggingface"
    model = loaded(tm.minilm())
    assert model.task == "text_embedding" and model.normalize
    vectors = np.asarray(model.predict({"instances": TEXTS})["predictions"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated
    v2 = model.predict(InferRequest("m", [Tensor.from_numpy("text", np.array([t.encode() for t in TEXTS], object))]))
    assert v2.outputs[0].datatype == "FP32" and np.allclose(v2.outputs[0].data, vectors, atol=1e-6)


@pytest.mark.parametrize(
    "head, task",
    [
        ("BertForSequenceClassification", "sequence_classification"),
        ("BertForTokenClassification", "token_classification"),
    ],
)
def test_classification_heads_answer_as_the_model_does(tmp_path: Path, head: str, task: str) -> None:
    path = tm.tiny_bert(tmp_path / head, head)
    model = loaded(path)
    assert model.task == task
    predictions = model.predict({"instances": TEXTS})["predictions"]
    expected, enc = direct(path, head, TEXTS)
    if task == "token_classification":  # padding positions are -1
        expected = np.where(enc["attention_mask"].numpy() == 1, expected.numpy(), -1)
    assert np.asarray(predictions).tolist() == np.asarray(expected).tolist()


def test_fill_mask_returns_the_predicted_word(tmp_path: Path) -> None:
    path = tm.tiny_bert(tmp_path / "mlm", "BertForMaskedLM")
    model = loaded(path)
    texts = ["The capital of France is [MASK].", "I like [MASK] tea."]
    expected, enc = direct(path, "BertForMaskedLM", texts)
    mask = enc["input_ids"] == model.tokenizer.mask_token_id
    words = [model.tokenizer.decode([int(expected[i][mask[i]][0])]).strip() for i in range(2)]
    assert model.predict({"instances": texts})["predictions"] == words
    with pytest.raises(InvalidInput, match=r"instance 0 has no \[MASK\] to fill"):
        model.predict({"instances": ["no mask here"]})


def test_the_task_can_be_forced_and_bad_inputs_are_refused(tmp_path: Path) -> None:
    path = tm.tiny_bert(tmp_path / "cls", "BertForSequenceClassification")
    as_embedder = loaded(path, task="text_embedding")
    assert np.asarray(as_embedder.predict({"instances": ["hi"]})["predictions"]).shape == (1, 32)
    for bad in ({"instances": [1, 2]}, {"instances": []}, {"rows": ["a"]}, b"raw"):
        with pytest.raises(InvalidInput):
            as_embedder.predict(bad)
    with pytest.raises(InvalidInput, match="one BYTES input"):
        as_embedder.predict(InferRequest("m", [Tensor.from_numpy("x", np.zeros(2, np.float32))]))
    with pytest.raises(ValueError, match="--task 'summarize' is not served"):
        HuggingFaceModel("m", path, {"task": "summarize"})


def test_a_generative_model_is_refused_with_a_reason(tmp_path: Path) -> None:
    import json

    path = tm.tiny_bert(tmp_path / "gen", "BertForSequenceClassification")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadForCausalLM"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="is a generative model"):
        loaded(path)
