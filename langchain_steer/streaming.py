"""Turn a stream of generated token ids into text deltas, with stop strings.

:class:`TextAssembler` is the consumer half of every streamed reply. It follows these rules:

* text is decoded incrementally: each new token is decoded in a short window with the tokens before it,
  so multi-token characters and word pieces come out as a full decode gives them, at a cost that does not
  grow with the reply's length. A delta that would end in half a character waits for the next token;
* stop strings end the reply. Text that might be the start of a stop string is held back until it is clear
  that it is not, so no part of a stop string is ever emitted;
* every token is counted, special tokens and tokens after a stop included, so usage adds up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Delta", "TextAssembler"]


@dataclass
class Delta:
    """A piece of generated text and the number of new tokens it came from."""

    text: str
    tokens: int


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class TextAssembler:
    r"""Accumulates one reply's token ids and hands out the text that is safe to show.

    Example:
        >>> assembler = TextAssembler(tokenizer, stop=["\\n\\n"])  # doctest: +SKIP
        >>> for ids in token_stream:  # doctest: +SKIP
        ...     delta = assembler.feed(ids)
        ...     if delta: print(delta.text, end="")
        ...     if assembler.stopped: break
        >>> tail = assembler.close()  # doctest: +SKIP
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.generated: list[int] = []
        self.emitted = 0  # characters of the decoded text already handed out
        self.pending = 0  # tokens not yet reported in a delta
        self.tokens = 0
        """Every token fed so far, special ones and those after a stop included."""
        self.stopped = False
        """Whether a stop string has been seen; later tokens are only counted."""
        self._decoded = ""  # the text of generated[:_read]
        self._prefix = 0  # the window's context starts here: decoding from it settles word boundaries
        self._read = 0  # tokens whose text is already in _decoded
        self._cut = -1  # where the first stop string starts in _decoded, once seen

    @property
    def text(self) -> str:
        """The reply so far, cut before the first stop string."""
        text = self._decoded if self.stopped else self._decoded + self._window(final=True)[0]
        return text[: self._cut] if self._cut >= 0 else text

    def _window(self, final: bool = False) -> tuple[str, bool]:
        """The text the tokens after ``_read`` add, and whether it is complete (no half character)."""
        decode = self.tokenizer.decode
        context = decode(self.generated[self._prefix : self._read], skip_special_tokens=True)
        full = decode(self.generated[self._prefix :], skip_special_tokens=True)
        if not final and (len(full) <= len(context) or full.endswith("\ufffd")):
            return "", False
        return full[len(context) :], True

    def feed(self, ids: Iterable[int]) -> Delta | None:
        """Add newly generated token ids; return the text that can now be shown, if any."""
        ids = list(ids)
        self.pending += len(ids)
        self.tokens += len(ids)
        if self.stopped:
            return None
        self.generated.extend(t for t in ids if t not in self.special)
        piece, complete = self._window()
        if not complete:
            return None  # half of a multi-byte character, or nothing visible yet: wait
        self._prefix, self._read = self._read, len(self.generated)
        start = max(0, len(self._decoded) - max((len(s) for s in self.stop), default=0) + 1)
        self._decoded += piece
        text = self._decoded
        # Only the new text (and a stop string's length before it) can hold a stop not seen yet.
        cut = min((i for s in self.stop if (i := text.find(s, start)) >= 0), default=-1)
        if cut >= 0:
            self.stopped, self._cut = True, cut
            return self._take(text[self.emitted : max(cut, self.emitted)], len(text))
        safe = len(text) - _held_back(text, self.stop)
        if safe > self.emitted or self.pending:
            return self._take(text[self.emitted : max(safe, self.emitted)], max(safe, self.emitted))
        return None

    def close(self) -> Delta | None:
        """End of the reply: return held-back text (if no stop was seen) and uncounted tokens."""
        tail = "" if self.stopped else self.text[self.emitted :]
        if tail or self.pending:
            return self._take(tail, self.emitted + len(tail))
        return None

    def _take(self, text: str, emitted: int) -> Delta:
        delta = Delta(text, self.pending)
        self.pending = 0
        self.emitted = emitted
        return delta
