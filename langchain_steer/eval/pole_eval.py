"""Does steering move replies to the poles, in fluent text, without moving the other dimensions?

:func:`evaluate_poles` answers the way a reader would: it generates greedy replies to everyday requests at a
few strengths of each dimension, and for every reply records

* what every dimension's :class:`~langchain_steer.eval.judge.PoleJudge` reads in it (so one run gives both
  each dimension's own pole shares and its **cross-effects** on the others);
* whether it is degenerate (:func:`langchain_steer.eval.metrics.degeneration`);
* its perplexity, given the request, under the unsteered model, and optionally under a reference model.

Fluency is judged against the **prompted-pole baseline**: replies that reach the same pole by *asking* for
it, scored the same way (see :mod:`langchain_steer.eval.replies`, which generates and scores the replies of
every measurement).

Everything is greedy, so a run is reproducible; rows of every strength share batched ``generate`` calls.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_steer.eval.judge import LABELS, PoleJudge
from langchain_steer.eval.replies import (
    Baseline,
    Reply,
    Scorer,
    generate_replies,
    geometric_ppl,
    prompted_baseline,
    score_replies,
)
from langchain_steer.vectors import SteeringVector

__all__ = ["PoleEvaluation", "evaluate_poles"]


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


def evaluate_poles(
    model: Any,
    tokenizer: Any,
    vectors: Mapping[str, SteeringVector],
    *,
    prompts: Sequence[str],
    judges: Mapping[str, PoleJudge],
    instructions: Mapping[str, Mapping[str, str]] | None = None,
    dimensions: Sequence[str] | None = None,
    strengths: Sequence[float] = (-1.0, 1.0),
    system: str | None = None,
    max_new_tokens: int = 48,
    repetition_penalty: float | None = 1.1,
    reference: Scorer | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> PoleEvaluation:
    """Steer each dimension alone at each strength on every prompt, and measure what the replies say.

    Args:
        model: the causal LM the vectors were made for.
        tokenizer: its tokenizer.
        vectors: dimension → vector.
        prompts: everyday requests that favour no pole (for the built-in dimensions,
            :func:`langchain_steer.dimensions.everyday_requests` ``("test")``, held out from all tuning).
        judges: dimension → judge; every reply is read by every judge, for the cross-effects.
        instructions: dimension → pole instructions for the prompted-pole baseline (``None``: no baseline,
            so no perplexity ratios).
        dimensions: the dimensions to steer (default: every one in ``vectors``).
        strengths: the non-zero strengths to steer at; unsteered replies are always included.
        system: the system prompt.
        max_new_tokens: reply length (the issue's measurements use 48).
        repetition_penalty: HF repetition penalty applied to every reply (``None``: none).
        reference: an optional ``(model, tokenizer)`` to score perplexity with as well.
        batch_size: rows per ``generate``.
        progress: show progress bars.

    Raises:
        ValueError: no prompts, a dimension without a vector or judge, or bad sizes.
    """
    if not prompts:
        raise ValueError("evaluate_poles needs at least one prompt.")
    steered = list(dimensions or vectors)
    for name in steered:
        if name not in vectors or name not in judges:
            raise ValueError(f"Dimension {name!r} needs both a vector and a judge.")
    levels = sorted({float(s) for s in strengths if s != 0})
    started = time.perf_counter()
    rows: list[tuple[str, dict[str, float]]] = [(p, {}) for p in prompts]
    rows += [(p, {name: s}) for name in steered for s in levels for p in prompts]
    texts = generate_replies(
        model,
        tokenizer,
        vectors,
        rows,
        system=system,
        max_new_tokens=max_new_tokens,
        repetition_penalty=repetition_penalty,
        batch_size=batch_size,
        progress=progress,
    )
    replies = score_replies(
        model,
        tokenizer,
        [(p, p, s, t) for (p, s), t in zip(rows, texts, strict=True)],
        judges,
        system=system,
        reference=reference,
        progress=progress,
    )
    baselines = (
        prompted_baseline(
            model,
            tokenizer,
            judges,
            {d: instructions[d] for d in steered if d in instructions},
            prompts,
            system=system,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
            reference=reference,
            batch_size=batch_size,
            progress=progress,
        )
        if instructions
        else {}
    )
    return PoleEvaluation(
        dimensions=steered,
        strengths=[0.0, *levels],
        replies=replies,
        baselines=baselines,
        settings={
            "prompts": list(prompts),
            "system": system,
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "repetition_penalty": repetition_penalty,
            "model_id": str(getattr(getattr(model, "config", None), "name_or_path", "")),
            "reference_model": (
                str(getattr(reference[0].config, "name_or_path", "")) if reference else None
            ),
            "vectors": {
                name: {
                    "layers": vectors[name].layers,
                    "method": vectors[name].method,
                    "functional_range": vectors[name].functional_range,
                    "negative_range": vectors[name].negative_side[1],
                }
                for name in steered
            },
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
