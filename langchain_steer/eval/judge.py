"""The pole judge: does a reply read as a dimension's negative pole, its positive pole, or neither?

:class:`PoleJudge` decides from **pole evidence in the reply's statements**: the distinct words and phrases
of each pole's lexicon it uses (a built-in dimension's ``pole_words``: "cheap", "five star", "hidden gem",
"breakfast"...). A reply reads as a pole when it uses at least ``margin`` more distinct terms of that pole
than of the other; otherwise it reads as neither. Clarifying questions ("What's your budget?") are left out:
asking about a pole is not recommending it.

Why a lexicon decides, and embeddings only cross-check: on 330 demo-model replies that a developer labelled
blind (``tests/data/judge_labels_dev.json``), the lexicon agreed with the human label on 91 % of
(reply, dimension) pairs, while the best embedding judge (all-MiniLM-L6-v2 similarity to the pole corpora
and descriptions, thresholds fitted on the same labels) reached 74 to 86 %: a 48-token reply's sentence
embedding mostly encodes that it is a recommendation, and a pole's few words barely move it. The
embedding similarity is still reported beside every verdict (:meth:`PoleJudge.embedding_agreement`), as an
independent check that the lexicon's pole is also the nearer pole in meaning.

How well the built-in lexicons read, against blind labels that never shaped them
(``tests/data/judge_labels_validation.json``), is in ``docs/eval.md``: about 9 replies in 10 on every
dimension but ``ambiance``, whose poles ("touristy" against "hidden gem") human readers also disagree on.

For a custom dimension without a curated lexicon, :meth:`PoleJudge.from_examples` derives one from the
contrastive examples (words over-represented at one pole, by smoothed log-odds).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import torch

__all__ = ["LABELS", "Label", "PoleJudge", "embed_statements", "judge_accuracy", "statements"]

Label = Literal["negative", "neither", "positive"]
LABELS: tuple[Label, ...] = ("negative", "neither", "positive")

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_CLARIFYING = re.compile(
    r"(what|which|where|when|who|whom|how|why|are|is|do|does|did|would|will|could|can|should|have|has)\b"
)
_MIN_LOG_ODDS = math.log(2.0)
_STOP = frozenset(
    "a an and are as at be but by for from has have i in is it its of on or our so that the their them "
    "they this to was we were will with you your my me he she his her can could would should just also "
    "very really more most some any all one two not no if then than into out up about".split()
)


def embed_statements(texts: Sequence[str]) -> torch.Tensor:
    """MiniLM embeddings of each text's :func:`statements` (the whole text when nothing is left)."""
    from langchain_steer.embeddings import embed

    return embed([statements(t) or t for t in texts])


def statements(text: str) -> str:
    """``text`` without its clarifying questions (sentences ending in "?" that start with a question word)."""
    kept = []
    for sentence in _SENTENCE.split(text):
        stripped = sentence.strip()
        if stripped and not (stripped.endswith("?") and _CLARIFYING.match(stripped.lower())):
            kept.append(stripped)
    return " ".join(kept)


def _normalise(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


@dataclasses.dataclass(frozen=True)
class PoleJudge:
    """Labels replies as a dimension's ``"negative"`` pole, ``"positive"`` pole, or ``"neither"``.

    Attributes:
        dimension: the dimension's name.
        poles: ``(negative, positive)`` pole names, for reports.
        lexicon: ``{"negative": terms, "positive": terms}``; a term is a word or a phrase, matched as whole
            words, case-insensitively, with punctuation and hyphens read as spaces.
        margin: how many more distinct terms the winning pole needs (at least 1).
        descriptions: ``{"negative": sentences, "positive": sentences}`` describing each pole, for the
            embedding cross-check.
        corpus: ``{"negative": replies, "positive": replies}`` written at each pole, for the cross-check.
    """

    dimension: str
    poles: tuple[str, str]
    lexicon: Mapping[str, tuple[str, ...]]
    margin: int = 1
    descriptions: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    corpus: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        lexicon = {
            side: tuple(dict.fromkeys(self.lexicon.get(side, ())))
            for side in ("negative", "positive")
        }
        if not lexicon["negative"] or not lexicon["positive"]:
            raise ValueError(f"The judge of {self.dimension!r} needs lexicon terms for both poles.")
        shared = set(map(_normalise, lexicon["negative"])) & set(
            map(_normalise, lexicon["positive"])
        )
        if shared:
            raise ValueError(
                f"The judge of {self.dimension!r} has terms at both poles: "
                f"{sorted(s.strip() for s in shared)}."
            )
        if isinstance(self.margin, bool) or not isinstance(self.margin, int) or self.margin < 1:
            raise ValueError(f"margin must be a whole number >= 1, not {self.margin!r}.")
        object.__setattr__(self, "lexicon", lexicon)
        object.__setattr__(self, "poles", tuple(self.poles))
        object.__setattr__(
            self, "descriptions", {k: tuple(v) for k, v in self.descriptions.items()}
        )
        object.__setattr__(self, "corpus", {k: tuple(v) for k, v in self.corpus.items()})

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def for_dimension(cls, name: str) -> PoleJudge:
        """The judge of a built-in dimension: its ``pole_words``, descriptions and held-out pole replies.

        Raises:
            ValueError: an unknown dimension.
        """
        from langchain_steer.dimensions import load_dimension

        dimension = load_dimension(name)
        negative, positive = dimension.examples("test")
        return cls(
            dimension=name,
            poles=dimension.poles,
            lexicon={k: tuple(v) for k, v in dimension.pole_words.items()},
            descriptions={k: tuple(v) for k, v in dimension.pole_descriptions.items()},
            corpus={
                "negative": tuple(e.response for e in negative),
                "positive": tuple(e.response for e in positive),
            },
        )

    @classmethod
    def from_examples(
        cls,
        negative: Sequence[str],
        positive: Sequence[str],
        *,
        dimension: str = "",
        poles: tuple[str, str] = ("negative", "positive"),
        size: int = 25,
        min_count: int = 3,
    ) -> PoleJudge:
        """Derive a lexicon from replies written at each pole: the words most over-represented at a pole.

        Words are scored by their log-odds ratio between the two poles with a +1 prior; a word must occur
        in at least ``min_count`` replies of its pole, and be at least twice as frequent there. Review the
        result (``judge.lexicon``) and edit it: derived lexicons pick up topic words the poles happen to
        differ in.

        Raises:
            ValueError: no word passes the filters at one of the poles (give more examples).
        """

        def counts(texts: Iterable[str]) -> Counter[str]:
            found: Counter[str] = Counter()
            for text in texts:
                found.update(
                    {
                        w
                        for w in re.findall(r"[a-z]+", text.lower())
                        if w not in _STOP and len(w) > 2
                    }
                )
            return found

        neg, pos = counts(negative), counts(positive)
        total_neg, total_pos = sum(neg.values()) + len(neg), sum(pos.values()) + len(pos)

        def top(
            mine: Counter[str], other: Counter[str], total_mine: int, total_other: int
        ) -> tuple[str, ...]:
            scored = [
                (math.log((mine[w] + 1) / total_mine) - math.log((other[w] + 1) / total_other), w)
                for w in mine
                if mine[w] >= min_count
            ]
            return tuple(
                w for score, w in sorted(scored, reverse=True)[:size] if score > _MIN_LOG_ODDS
            )

        lexicon = {
            "negative": top(neg, pos, total_neg, total_pos),
            "positive": top(pos, neg, total_pos, total_neg),
        }
        if not lexicon["negative"] or not lexicon["positive"]:
            raise ValueError(
                "No distinctive words at one of the poles; give more examples or a lexicon of your own."
            )
        return cls(
            dimension=dimension,
            poles=poles,
            lexicon=lexicon,
            corpus={"negative": tuple(negative), "positive": tuple(positive)},
        )

    # -- judging -------------------------------------------------------------------------------
    def evidence(self, text: str) -> dict[str, list[str]]:
        """The distinct lexicon terms of each pole that the statements of ``text`` use.

        A term found only as part of a longer term of the same pole is not counted again: "lesser known"
        is one piece of evidence, not also "lesser".
        """
        body = _normalise(statements(text))
        found: dict[str, list[str]] = {}
        for side, terms in self.lexicon.items():
            hits = [(term, key) for term in terms if (key := _normalise(term)) in body]
            found[side] = [
                term for term, key in hits if not any(key != k and key in k for _, k in hits)
            ]
        return found

    def label(self, text: str) -> Label:
        """``"positive"``, ``"negative"`` or ``"neither"`` for one reply."""
        found = self.evidence(text)
        lead = len(found["positive"]) - len(found["negative"])
        if lead >= self.margin:
            return "positive"
        if -lead >= self.margin:
            return "negative"
        return "neither"

    def labels(self, texts: Sequence[str]) -> list[Label]:
        """:meth:`label` of every reply."""
        return [self.label(t) for t in texts]

    def shares(self, texts: Sequence[str]) -> dict[Label, float]:
        """The share of ``texts`` with each label (all 0 for no texts)."""
        labels = self.labels(texts)
        return {k: (labels.count(k) / len(labels) if labels else 0.0) for k in LABELS}

    def embedding_scores(
        self, texts: Sequence[str], embedded: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean cosine to the positive references minus to the negative ones, per reply (MiniLM).

        The references are the pole descriptions and the pole corpus, each side averaged over both.
        ``embedded`` may pass :func:`embed_statements` of ``texts`` already computed, so that several
        judges reading the same replies embed them once.

        Raises:
            ValueError: the judge has neither descriptions nor a corpus.
        """
        from langchain_steer.embeddings import embed

        refs = {
            side: [*self.descriptions.get(side, ()), *self.corpus.get(side, ())]
            for side in ("negative", "positive")
        }
        if not refs["negative"] or not refs["positive"]:
            raise ValueError(
                f"The judge of {self.dimension!r} has no descriptions or corpus to compare with."
            )
        emb = embed_statements(texts) if embedded is None else embedded
        return (emb @ embed(refs["positive"]).T).mean(-1) - (emb @ embed(refs["negative"]).T).mean(
            -1
        )

    def embedding_agreement(self, texts: Sequence[str]) -> float:
        """Of the replies labelled a pole, the share whose embedding is nearer that pole too (NaN if none)."""
        labels = self.labels(texts)
        polar = [i for i, label in enumerate(labels) if label != "neither"]
        if not polar:
            return math.nan
        scores = self.embedding_scores([texts[i] for i in polar]).tolist()
        agree = sum(
            (labels[i] == "positive") == (score > 0) for i, score in zip(polar, scores, strict=True)
        )
        return agree / len(polar)


def judge_accuracy(
    judge: PoleJudge, texts: Sequence[str], expected: Sequence[Label]
) -> dict[str, float | int]:
    """How often ``judge`` gives the ``expected`` labels: overall and per expected label, with counts.

    Returns:
        ``{"accuracy": ..., "n": ..., "<label>": accuracy, "<label>_n": count}`` (NaN for an absent label).
    """
    if len(texts) != len(expected):
        raise ValueError(f"{len(texts)} texts but {len(expected)} labels.")
    got = judge.labels(texts)
    report: dict[str, float | int] = {
        "accuracy": sum(a == b for a, b in zip(got, expected, strict=True)) / max(1, len(texts)),
        "n": len(texts),
    }
    for label in LABELS:
        idx = [i for i, e in enumerate(expected) if e == label]
        report[label] = sum(got[i] == label for i in idx) / len(idx) if idx else math.nan
        report[f"{label}_n"] = len(idx)
    return report
