"""Protocol core: the OpenAI-compatible API (completions, chat, embeddings, models) and the Cohere/Jina rerank
shape — requests parsed and checked into transport-neutral calls, responses and stream chunks built as dicts."""
