"""LLM runtime: a sequence's text as it is generated — incremental detokenization (a moving window of tokens is
decoded so multi-token characters and tokenizers that drop a leading space come out right) and stop strings, cut
exactly, with the text that might begin a stop string held back from the stream until it is decided."""

from __future__ import annotations

from typing import Any

REPLACEMENT = "\ufffd"  # what a decoder yields for an incomplete UTF-8 sequence
PROMPT_WINDOW = 5  # prompt tokens decoded ahead of the output, so the first output token keeps its leading space


class TextStream:
    def __init__(self, tokenizer: Any, prompt_ids: list[int], stops: list[str]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-PROMPT_WINDOW:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)
        self.text = ""  # the output text decided so far (cut at a stop string once one is found)
        self.emitted = 0  # how much of it has been handed out
        self.stops = [s for s in stops if s]
        self.longest = max((len(s) for s in self.stops), default=0)
        self.stopped = False

    def push(self, token: int) -> None:
        """Add one generated token; sets `stopped` when the text now contains a stop string."""
        self.ids.append(token)
        decode = self.tokenizer.decode
        prefix = decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        full = decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(full) <= len(prefix) or full.endswith(REPLACEMENT):
            return  # no complete character yet
        before = len(self.text)
        self.text += full[len(prefix) :]
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        if self.stops:
            start = max(0, before - self.longest + 1)
            hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self.stopped = True

    def take(self, final: bool) -> str:
        """The text not handed out yet that can no longer turn out to be part of a stop string (all of it when
        the sequence ended)."""
        end = len(self.text) if final or self.stopped else len(self.text) - self._held()
        piece = self.text[self.emitted : end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return piece

    def _held(self) -> int:
        """Length of the longest tail of the text that is the start of a stop string."""
        text = self.text
        for size in range(min(self.longest - 1, len(text) - self.emitted), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return size
        return 0
