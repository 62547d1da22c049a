"""LLM runtime: `response_format: json_object` — a character-level JSON recognizer that tells whether a text can
still grow into one JSON object, used to refuse each candidate token that would break it (the engine samples, and
resamples without the refused token). The sequence ends when the object closes. Tokens that decode to an
incomplete UTF-8 character are refused, so strings stay ASCII-or-whole-characters."""

from __future__ import annotations

from collections.abc import Callable

_WS = " \t\n\r"
_LITERALS = ("true", "false", "null")
_ESCAPES = '"\\/bfnrtu'
_HEX = "0123456789abcdefABCDEF"
# number states: after "-", "0", digits, "." , fraction digits, "e", exponent sign, exponent digits
_NUMBER_END = {"zero", "int", "frac", "exp"}


class JsonObject:
    """Feeds characters; `ok` turns False at the first one no JSON object could contain there."""

    __slots__ = ("done", "escape", "hex_left", "key", "literal", "number", "ok", "stack", "state")

    def __init__(self) -> None:
        self.stack: list[str] = []  # "{" or "["
        self.state = "start"  # start | value | key_or_end | key | colon | after | value_or_end | string | ...
        self.literal = ""  # what is left of true / false / null
        self.number = ""
        self.escape = False
        self.hex_left = 0
        self.ok = True
        self.done = False  # the top-level object closed
        self.key = False  # the string being read is an object key

    def copy(self) -> JsonObject:
        other = JsonObject.__new__(JsonObject)
        for name in JsonObject.__slots__:
            value = getattr(self, name)
            setattr(other, name, list(value) if isinstance(value, list) else value)
        return other

    def feed(self, text: str) -> bool:
        for ch in text:
            if not self.ok or self.done or not self._char(ch):
                self.ok = False
                return False
        return True

    # --- the automaton ------------------------------------------------------------------------------------------
    def _char(self, ch: str) -> bool:
        state = self.state
        if state == "string":
            return self._string(ch)
        if state == "literal":
            if ch != self.literal[0]:
                return False
            self.literal = self.literal[1:]
            if not self.literal:
                self._value_done()
            return True
        if state == "number":
            if self._number(ch):
                return True
            if self.number not in _NUMBER_END:
                return False
            self._value_done()
            return self._char(ch)  # the character after a number is read in the container
        if ch in _WS:
            return True
        if state == "start":
            return ch == "{" and self._open("{")
        if state in ("value", "value_or_end"):
            if state == "value_or_end" and ch == "]":
                return self._close("[")
            return self._value(ch)
        if state in ("key_or_end", "key"):
            if state == "key_or_end" and ch == "}":
                return self._close("{")
            if ch == '"':
                self.state, self.key, self.escape = "string", True, False
                return True
            return False
        if state == "colon":
            if ch == ":":
                self.state = "value"
                return True
            return False
        if state == "after":
            top = self.stack[-1]
            if ch == ",":
                self.state = "key" if top == "{" else "value"
                return True
            if ch in "}]":
                return self._close("{" if ch == "}" else "[")
        return False

    def _value(self, ch: str) -> bool:
        if ch in "{[":
            return self._open(ch)
        if ch == '"':
            self.state, self.key, self.escape = "string", False, False
            return True
        for word in _LITERALS:
            if ch == word[0]:
                self.state, self.literal = "literal", word[1:]
                return True
        if ch == "-" or ch.isdigit():
            self.state = "number"
            self.number = "sign" if ch == "-" else ("zero" if ch == "0" else "int")
            return True
        return False

    def _string(self, ch: str) -> bool:
        if self.hex_left:
            if ch not in _HEX:
                return False
            self.hex_left -= 1
            return True
        if self.escape:
            if ch not in _ESCAPES:
                return False
            self.escape = False
            self.hex_left = 4 if ch == "u" else 0
            return True
        if ch == "\\":
            self.escape = True
            return True
        if ch == '"':
            if self.key:
                self.state = "colon"
            else:
                self._value_done()
            return True
        return ch >= " "  # control characters must be escaped

    def _number(self, ch: str) -> bool:
        n = self.number
        digit = ch.isdigit()
        moves = {
            "sign": {"0": "zero"} if ch == "0" else ({"d": "int"} if digit else {}),
            "zero": {".": "dot", "e": "e", "E": "e"},
            "int": {".": "dot", "e": "e", "E": "e"},
            "dot": {},
            "frac": {"e": "e", "E": "e"},
            "e": {"+": "esign", "-": "esign"},
            "esign": {},
        }.get(n, {})
        if ch in moves:
            self.number = moves[ch]
            return True
        if digit:
            following = {
                "sign": "int",
                "int": "int",
                "dot": "frac",
                "frac": "frac",
                "e": "exp",
                "esign": "exp",
                "exp": "exp",
            }
            if n in following:
                self.number = following[n]
                return True
        return False

    def _open(self, bracket: str) -> bool:
        self.stack.append(bracket)
        self.state = "key_or_end" if bracket == "{" else "value_or_end"
        return True

    def _close(self, bracket: str) -> bool:
        if not self.stack or self.stack[-1] != bracket:
            return False
        self.stack.pop()
        self._value_done()
        return True

    def _value_done(self) -> None:
        if not self.stack:
            self.done = True
            self.state = "after"
        else:
            self.state = "after"


def acceptor(state: JsonObject, text_of: Callable[[int], str]) -> Callable[[int], bool]:
    """Whether a token keeps the text a prefix of a JSON object."""

    def accepts(token: int) -> bool:
        text = text_of(token)
        if not text or "\ufffd" in text:
            return False
        return state.copy().feed(text)

    return accepts
