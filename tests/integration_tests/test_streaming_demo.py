"""TextAssembler on the demo model's byte-level tokenizer: incremental deltas equal a full decode."""

import pytest

from langchain_steer import load_model
from langchain_steer.streaming import TextAssembler

TEXTS = [
    "Plain ASCII, with punctuation: a, b; c! And a second sentence.",
    "Café crème brûlée à la façon de Zoë — naïve résumé.",
    "東京で寿司を食べましょう。北京烤鸭也很好吃！서울의 비빔밥",
    "Emoji 🎉🍣🇯🇵 and 👩‍👩‍👧 families, ZWJ 🏳️‍🌈, then text again.",
    "Mixed: ½ ∑ ∞ → ✓ 😀 naïve 日本 🍜 end\n\nwith a blank line",
]


class Counting:
    """The demo tokenizer, counting how many ids ``decode`` reads."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.all_special_ids = tokenizer.all_special_ids
        self.read = 0

    def decode(self, ids, **kwargs):
        self.read += len(ids)
        return self.tokenizer.decode(ids, **kwargs)


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("demo")[1]


def _stream(tokenizer, ids, stop=()):
    assembler = TextAssembler(tokenizer, stop)
    pieces = []
    for token in ids:
        delta = assembler.feed([token])
        if delta is not None:
            pieces.append(delta.text)
        if assembler.stopped:
            break
    tail = assembler.close()
    if tail is not None:
        pieces.append(tail.text)
    return pieces, assembler


@pytest.mark.parametrize("text", TEXTS)
def test_deltas_join_to_the_full_decode_on_multi_byte_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces, assembler = _stream(tokenizer, ids)
    full = tokenizer.decode(ids, skip_special_tokens=True)
    assert "".join(pieces) == full == assembler.text
    assert all("\ufffd" not in p for p in pieces)  # no half character is ever shown
    assert assembler.tokens == len(ids)


def test_stop_strings_still_cut_exactly(tokenizer):
    text = TEXTS[4]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces, assembler = _stream(tokenizer, ids, stop=["\n\n"])
    assert "".join(pieces) == text.split("\n\n")[0] == assembler.text and assembler.stopped


def test_decoding_work_grows_linearly_with_the_reply(tokenizer):
    """A full re-decode per token reads n²/2 ids; the incremental window reads a few per token."""
    ids = tokenizer(" ".join(TEXTS) * 8, add_special_tokens=False)["input_ids"]
    counting = Counting(tokenizer)
    _stream(counting, ids)
    assert counting.read < 8 * len(ids), (counting.read, len(ids))  # quadratic would be ~len(ids)**2 / 2
