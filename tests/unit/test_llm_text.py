"""The LLM runtime's text stream: stop strings cut exactly, text that may start a stop string held back until
decided, and characters split across tokens never emitted half-made."""

from __future__ import annotations

from modelplane.runtimes.llm.text import TextStream


class Chars:
    """A tokenizer whose tokens are characters (ids = code points); id 0 decodes to half a UTF-8 character."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        out = ""
        for i, t in enumerate(ids):
            if t == 0:
                out += "é" if i + 1 < len(ids) and ids[i + 1] == 1 else "\ufffd"
            elif t != 1:
                out += chr(t)
        return out


def feed(stream: TextStream, text: str) -> list[str]:
    pieces = []
    for ch in text:
        stream.push(ord(ch))
        pieces.append(stream.take(final=False))
        if stream.stopped:
            break
    return pieces


def test_stop_string_cuts_exactly_and_nothing_after_it_is_emitted() -> None:
    stream = TextStream(Chars(), [ord("x")], ["STOP"])
    pieces = feed(stream, "abcSTOPdef")
    assert stream.stopped and stream.text == "abc"
    assert "".join(pieces) + stream.take(final=True) == "abc"


def test_a_possible_stop_prefix_is_held_back_then_released() -> None:
    stream = TextStream(Chars(), [], ["STOP"])
    pieces = feed(stream, "aST")
    assert "".join(pieces) == "a"  # "ST" might begin STOP
    stream.push(ord("x"))
    assert stream.take(final=False) == "STx"
    assert not stream.stopped


def test_the_earliest_of_several_stops_wins() -> None:
    stream = TextStream(Chars(), [], ["zz", "b"])
    feed(stream, "aabzz")
    assert stream.text == "aa"


def test_a_stop_string_spanning_tokens_is_found() -> None:
    stream = TextStream(Chars(), [], ["lo w"])
    feed(stream, "hello world")
    assert stream.text == "hel"


def test_half_a_character_waits_for_its_other_half() -> None:
    stream = TextStream(Chars(), [], [])
    stream.push(ord("a"))
    stream.push(0)  # half of é: nothing new yet
    assert stream.take(final=False) == "a"
    stream.push(1)
    assert stream.take(final=False) == "é"


def test_without_stops_everything_is_emitted_at_once() -> None:
    stream = TextStream(Chars(), [], [])
    assert feed(stream, "abc") == ["a", "b", "c"]
