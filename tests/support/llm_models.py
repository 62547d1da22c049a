"""Tiny causal LMs built in the test: random weights (a few MB), a byte-level BPE tokenizer trained on a few
sentences, a chat template — nothing downloaded."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Model serving is the art of answering requests quickly.",
    "KServe, Triton and MLServer serve models; modelplane serves them too.",
    "Continuous batching lets new requests join a running batch at the next step.",
    "Hello world! How are you today? I am fine, thank you.",
    '{"name": "value", "list": [1, 2, 3], "nested": {"a": true}}',
] * 20

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tokenizer(path: Path, vocab: int = 512) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|pad|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    return path


def causal_lm(path: Path, arch: str = "gpt2", layers: int = 2, hidden: int = 64, context: int = 256) -> Path:
    """A random-weight causal LM directory (`gpt2` or `llama`) with its tokenizer."""
    import torch
    import transformers as tf

    path.mkdir(parents=True, exist_ok=True)
    tokenizer(path)
    fast = tf.AutoTokenizer.from_pretrained(path)
    ends = {"eos_token_id": fast.eos_token_id, "bos_token_id": fast.eos_token_id, "pad_token_id": fast.pad_token_id}
    common = {"vocab_size": len(fast), **ends}
    if arch == "gpt2":
        config = tf.GPT2Config(n_layer=layers, n_embd=hidden, n_head=4, n_positions=context, **common)
        cls = tf.GPT2LMHeadModel
    else:
        config = tf.LlamaConfig(
            num_hidden_layers=layers,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=context,
            **common,
        )
        cls = tf.LlamaForCausalLM
    torch.manual_seed(0)
    model = cls(config).eval()
    model.generation_config.eos_token_id = fast.eos_token_id
    model.save_pretrained(path)
    return path
