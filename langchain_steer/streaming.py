"""Turn a stream of generated token ids into text deltas, with stop strings.

:class:`TextAssembler` is the consumer half of every streamed reply. It follows these rules:

* text is decoded from all the reply's tokens so far, so multi-token characters and word pieces come out
  right; a delta that would end in half a character waits for the next token;
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

    @property
    def text(self) -> str:
        """The reply so far, cut before the first stop string."""
        text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        cut = min((text.find(s) for s in self.stop if s in text), default=-1)
        return text[:cut] if cut >= 0 else text

    def feed(self, ids: Iterable[int]) -> Delta | None:
        """Add newly generated token ids; return the text that can now be shown, if any."""
        ids = list(ids)
        self.pending += len(ids)
        self.tokens += len(ids)
        if self.stopped:
            return None
        self.generated.extend(t for t in ids if t not in self.special)
        text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return None  # half of a multi-byte character: wait for the rest
        cut = min((text.find(s) for s in self.stop if s in text), default=-1)
        if cut >= 0:
            self.stopped = True
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
