"""The data of a pole evaluation: scored replies, the prompted-pole baseline and the whole run.

Plain frozen dataclasses with JSON round trips, produced by
:func:`langchain_steer.eval.pole_eval.evaluate_poles` (and
:func:`~langchain_steer.eval.pole_eval.prompted_baseline`), read by the reports and by
:func:`langchain_steer.eval.range_calibration.calibrate_range`. A saved run can be re-read with other judges
(:meth:`PoleEvaluation.rejudged`) without generating again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_steer.eval.judge import LABELS, Label, PoleJudge

__all__ = ["MIN_BASELINE", "Baseline", "PoleEvaluation", "Reply", "geometric_ppl"]

MIN_BASELINE = 5
"""Fewest on-pole prompted replies the baseline uses on their own; with fewer, every prompted reply counts."""


@dataclasses.dataclass(frozen=True)
class Reply:
    """One generated reply and everything measured on it.

    Attributes:
        prompt: the request as the model saw it (with a pole instruction, for baseline replies).
        request: the plain request, which perplexity is conditioned on.
        strengths: dimension → strength it was generated with (empty: unsteered or prompted).
        text: the reply.
        labels: dimension → what that dimension's judge reads in the reply.
        degeneration: the reasons the reply reads as broken (empty: ordinary prose).
        nll: mean per-token negative log-likelihood under the unsteered model (None: empty reply).
        reference_nll: the same under the reference model, when one was given.
        embedding: dimension → the judge's embedding score (:meth:`PoleJudge.embedding_scores`: cosine
            to the positive pole's descriptions and replies minus to the negative pole's), the independent
            cross-check of ``labels``; missing for judges with nothing to compare with.
    """

    prompt: str
    request: str
    strengths: dict[str, float]
    text: str
    labels: dict[str, Label]
    degeneration: list[str]
    nll: float | None
    reference_nll: float | None = None
    embedding: dict[str, float] = dataclasses.field(default_factory=dict)


def geometric_ppl(values: Sequence[float | None]) -> float:
    """``exp`` of the mean of per-reply mean NLLs (each reply counts once); NaN when none is given."""
    kept = [v for v in values if v is not None]
    return math.exp(sum(kept) / len(kept)) if kept else math.nan


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The prompted-pole baseline of one pole: replies to "<pole instruction> <request>".

    Attributes:
        dimension: the dimension.
        side: ``"negative"`` or ``"positive"``.
        instruction: the sentence prepended to each request.
        replies: the scored replies.
    """

    dimension: str
    side: str
    instruction: str
    replies: list[Reply]

    @property
    def on_pole(self) -> list[Reply]:
        """The replies the judge reads as the asked-for pole."""
        return [r for r in self.replies if r.labels.get(self.dimension) == self.side]

    @property
    def reference_replies(self) -> list[Reply]:
        """The replies fluency is compared with: the on-pole ones, or all when too few are on the pole."""
        on = self.on_pole
        return on if len(on) >= MIN_BASELINE else self.replies

    @property
    def ppl(self) -> float:
        """Geometric mean perplexity of :attr:`reference_replies` under the unsteered model."""
        return geometric_ppl([r.nll for r in self.reference_replies])

    @property
    def reference_ppl(self) -> float:
        """The same under the reference model (NaN without one)."""
        return geometric_ppl([r.reference_nll for r in self.reference_replies])

    @property
    def compliance(self) -> float:
        """Share of the prompted replies that the judge reads as the asked-for pole."""
        return len(self.on_pole) / len(self.replies) if self.replies else math.nan


def _net(replies: Sequence[Reply], dimension: str) -> float:
    """Share read as the positive pole minus share read as the negative pole."""
    if not replies:
        return math.nan
    labels = [r.labels[dimension] for r in replies]
    return (labels.count("positive") - labels.count("negative")) / len(labels)


@dataclasses.dataclass(frozen=True)
class PoleEvaluation:
    """Everything :func:`evaluate_poles` measured, JSON-serialisable with :meth:`to_dict`.

    Attributes:
        dimensions: the steered dimensions, in order.
        strengths: the strengths of each dimension's rows (0 is the shared unsteered rows).
        replies: every steered and unsteered reply.
        baselines: ``(dimension, side)`` → prompted-pole baseline.
        settings: prompts, decoding, models, seconds taken.
    """

    dimensions: list[str]
    strengths: list[float]
    replies: list[Reply]
    baselines: dict[tuple[str, str], Baseline]
    settings: dict[str, Any]

    def at(self, dimension: str, strength: float) -> list[Reply]:
        """The replies steered on ``dimension`` alone at ``strength`` (0: the unsteered replies)."""
        if strength == 0:
            return [r for r in self.replies if not r.strengths]
        return [
            r
            for r in self.replies
            if r.strengths.keys() == {dimension}
            and math.isclose(r.strengths[dimension], strength, abs_tol=1e-9)
        ]

    def shares(
        self, dimension: str, strength: float, judged: str | None = None
    ) -> dict[str, float]:
        """Share of each label that ``judged``'s judge (default: ``dimension``'s) gives at a strength."""
        replies = self.at(dimension, strength)
        labels = [r.labels[judged or dimension] for r in replies]
        return {k: labels.count(k) / len(labels) if labels else math.nan for k in LABELS}

    def embedding_agreement(self, dimension: str, strength: float) -> float:
        """Of the judged-polar replies at a strength, the share whose embedding points to that pole too.

        NaN when no reply reads as a pole, or no embedding score was recorded.
        """
        polar = [
            r
            for r in self.at(dimension, strength)
            if r.labels[dimension] != "neither" and dimension in r.embedding
        ]
        if not polar:
            return math.nan
        agree = sum(
            (r.labels[dimension] == "positive") == (r.embedding[dimension] > 0) for r in polar
        )
        return agree / len(polar)

    def degenerate(self, dimension: str, strength: float) -> float:
        """Share of degenerate replies at a strength."""
        replies = self.at(dimension, strength)
        return sum(bool(r.degeneration) for r in replies) / len(replies) if replies else math.nan

    def ppl(self, dimension: str, strength: float, reference: bool = False) -> float:
        """Geometric mean perplexity of the replies at a strength (under the reference model if asked)."""
        replies = self.at(dimension, strength)
        return geometric_ppl([r.reference_nll if reference else r.nll for r in replies])

    def ppl_ratio(self, dimension: str, strength: float, reference: bool = False) -> float:
        """Perplexity at a strength over the prompted baseline of the pole it steers towards.

        At strength 0 the ratio is to the mean of the two poles' baselines.
        """
        ppl = self.ppl(dimension, strength, reference)
        sides = (
            ["negative", "positive"]
            if strength == 0
            else ["positive" if strength > 0 else "negative"]
        )
        base = [
            self.baselines[(dimension, s)].reference_ppl
            if reference
            else self.baselines[(dimension, s)].ppl
            for s in sides
            if (dimension, s) in self.baselines
        ]
        return ppl / (sum(base) / len(base)) if base else math.nan

    def cross_effects(self, strength: float = 1.0) -> tuple[list[str], list[list[float]]]:
        """How far steering each dimension from ``-strength`` to ``+strength`` moves every judged one.

        Returns:
            ``(judged, matrix)``: ``matrix[i][j]`` is the net pole share (positive minus negative) that
            ``judged[j]``'s judge reads at ``+strength`` of ``self.dimensions[i]``, minus at ``-strength``.
            Where ``judged[j]`` is dimension ``i`` itself, that is its own effect (at most 2).
        """
        judged = sorted({d for r in self.replies for d in r.labels}, key=self._order)
        matrix = [
            [_net(self.at(i, strength), j) - _net(self.at(i, -strength), j) for j in judged]
            for i in self.dimensions
        ]
        return judged, matrix

    def _order(self, name: str) -> tuple[int, str]:
        return (
            self.dimensions.index(name) if name in self.dimensions else len(self.dimensions),
            name,
        )

    def rejudged(self, judges: Mapping[str, PoleJudge]) -> PoleEvaluation:
        """The same replies read again by ``judges``: only the labels change.

        Use it after revising a judge's lexicon, to re-read a saved run (:meth:`from_dict`) instead of
        generating every reply again. Dimensions without a judge here keep their labels; the embedding
        scores, perplexities and degeneration checks do not depend on the lexicon and are kept.
        """

        def relabel(reply: Reply) -> Reply:
            labels = dict(reply.labels)
            for name, judge in judges.items():
                labels[name] = judge.label(reply.text)
            return dataclasses.replace(reply, labels=labels)

        return dataclasses.replace(
            self,
            replies=[relabel(r) for r in self.replies],
            baselines={
                key: dataclasses.replace(b, replies=[relabel(r) for r in b.replies])
                for key, b in self.baselines.items()
            },
            settings={**self.settings, "rejudged": sorted(judges)},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (schema ``langchain-steer/pole-eval@1``)."""
        return {
            "schema": "langchain-steer/pole-eval@1",
            "dimensions": list(self.dimensions),
            "strengths": list(self.strengths),
            "settings": dict(self.settings),
            "baselines": [
                {
                    "dimension": b.dimension,
                    "side": b.side,
                    "instruction": b.instruction,
                    "replies": [dataclasses.asdict(r) for r in b.replies],
                }
                for b in self.baselines.values()
            ],
            "replies": [dataclasses.asdict(r) for r in self.replies],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoleEvaluation:
        """Rebuild a result from :meth:`to_dict`'s output."""
        baselines = {}
        for raw in data["baselines"]:
            replies = [Reply(**r) for r in raw["replies"]]
            baselines[(raw["dimension"], raw["side"])] = Baseline(
                raw["dimension"], raw["side"], raw["instruction"], replies
            )
        return cls(
            dimensions=list(data["dimensions"]),
            strengths=list(data["strengths"]),
            replies=[Reply(**r) for r in data["replies"]],
            baselines=baselines,
            settings=dict(data["settings"]),
        )
