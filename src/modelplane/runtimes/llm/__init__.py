"""Runtimes: causal language models with continuous batching (the `huggingface` runtime's generative side)."""
