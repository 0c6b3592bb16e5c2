"""Does steering move replies to the poles, in fluent text, without moving the other dimensions?

:func:`evaluate_poles` answers the way a reader would: it generates greedy replies to everyday requests at a
few strengths of each dimension, and for every reply records

* what every dimension's :class:`~langchain_steer.eval.judge.PoleJudge` reads in it (so one run gives both
  each dimension's own pole shares and its **cross-effects** on the others);
* whether it is degenerate (:func:`langchain_steer.eval.metrics.degeneration`);
* its perplexity, given the request, under the unsteered model, and optionally under a reference model.

Fluency is judged against the **prompted-pole baseline**: replies that reach the same pole by *asking* for
it ("I'm on a tight budget, so I want cheap or free options. <request>"), scored the same way, given the
plain request. A reply that moves to a pole must use that pole's words, which the plain request does not
predict; comparing with unsteered replies would charge that to fluency. Only the baseline replies the judge
reads as the asked-for pole count (the demo model ignores some requests); when fewer than
:data:`MIN_BASELINE` do, all of them count. :func:`prompted_baseline` builds it, and
:func:`langchain_steer.eval.range_calibration.calibrate_range` uses the same pieces.

Everything is greedy, so a run is reproducible; rows of every strength share batched ``generate`` calls.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from langchain_steer.dimensions.examples import Example
from langchain_steer.eval.fluency import english_vocabulary, reply_token_nlls
from langchain_steer.eval.judge import LABELS, Label, PoleJudge, embed_statements
from langchain_steer.eval.metrics import degeneration
from langchain_steer.generate import generate_batch
from langchain_steer.tensors import chunked
from langchain_steer.vectors import SteeringVector

__all__ = [
    "MIN_BASELINE",
    "Baseline",
    "PoleEvaluation",
    "Reply",
    "evaluate_poles",
    "generate_replies",
    "geometric_ppl",
    "prompted_baseline",
    "score_replies",
]

MIN_BASELINE = 5
"""Fewest on-pole prompted replies the baseline uses on their own; with fewer, every prompted reply counts."""

MAX_ROWS = 20_000
"""Upper bound on the replies of one run, so that a typo cannot start a week-long job."""

Scorer = tuple[Any, Any]  # (model, tokenizer)


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


def _chat(system: str | None, prompt: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]


@torch.no_grad()
def generate_replies(
    model: Any,
    tokenizer: Any,
    vectors: Mapping[str, SteeringVector],
    rows: Sequence[tuple[str, Mapping[str, float]]],
    *,
    system: str | None = None,
    max_new_tokens: int = 48,
    repetition_penalty: float | None = 1.1,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "generate",
) -> list[str]:
    """Greedy replies to ``(prompt, strengths)`` rows, each row steered on its own, in batches.

    Rows of similar prompt length share a batch, so little padding is computed.

    Raises:
        ValueError: bad sizes, an unknown dimension, or a strength out of range.
    """
    if not 1 <= max_new_tokens <= 1024:
        raise ValueError(f"max_new_tokens must be from 1 to 1024, not {max_new_tokens}.")
    if not 1 <= batch_size <= 256:
        raise ValueError(f"batch_size must be from 1 to 256, not {batch_size}.")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} replies is more than the limit of {MAX_ROWS}.")
    if repetition_penalty is not None and not 0.5 <= repetition_penalty <= 2:
        raise ValueError(f"repetition_penalty must be from 0.5 to 2, not {repetition_penalty}.")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    chunks = chunked(order, batch_size)
    extra: dict[str, Any] = (
        {} if repetition_penalty is None else {"repetition_penalty": repetition_penalty}
    )
    texts: dict[int, str] = {}
    for chunk in tqdm(chunks, desc=desc, disable=not progress, leave=False):
        replies = generate_batch(
            model,
            tokenizer,
            [_chat(system, rows[i][0]) for i in chunk],
            vectors,
            [dict(rows[i][1]) for i in chunk],
            max_new_tokens=max_new_tokens,
            **extra,
        )
        texts.update(zip(chunk, replies, strict=True))
    return [texts[i] for i in range(len(rows))]


def score_replies(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[str, str, Mapping[str, float], str]],
    judges: Mapping[str, PoleJudge],
    *,
    system: str | None = None,
    reference: Scorer | None = None,
    progress: bool = True,
) -> list[Reply]:
    """Judge, check and score ``(prompt, request, strengths, text)`` items (see :class:`Reply`).

    Perplexity is conditioned on the plain ``request`` with the same ``system`` prompt, under ``model`` as
    it is now: call it outside any ``steer`` block.
    """
    vocabulary = english_vocabulary()
    examples = [Example(request, text) for _, request, _, text in items]
    nlls = reply_token_nlls(model, tokenizer, examples, system=system, progress=progress)
    reference_nlls = (
        reply_token_nlls(*reference, examples, system=system, progress=progress)
        if reference is not None
        else None
    )
    texts = [text for *_, text in items]
    comparable = {name: j for name, j in judges.items() if j.descriptions or j.corpus}
    embedded = embed_statements(texts) if comparable else None  # once, for every judge
    embedding = {
        name: judge.embedding_scores(texts, embedded).tolist() for name, judge in comparable.items()
    }
    replies = []
    for i, (prompt, request, strengths, text) in enumerate(items):
        replies.append(
            Reply(
                prompt=prompt,
                request=request,
                strengths={k: float(v) for k, v in strengths.items()},
                text=text,
                labels={name: judge.label(text) for name, judge in judges.items()},
                degeneration=degeneration(text, vocabulary),
                nll=float(nlls[i].mean()) if nlls[i].numel() else None,
                reference_nll=(
                    float(reference_nlls[i].mean())
                    if reference_nlls is not None and reference_nlls[i].numel()
                    else None
                ),
                embedding={name: round(values[i], 5) for name, values in embedding.items()},
            )
        )
    return replies


def prompted_baseline(
    model: Any,
    tokenizer: Any,
    judges: Mapping[str, PoleJudge],
    instructions: Mapping[str, Mapping[str, str]],
    prompts: Sequence[str],
    *,
    system: str | None = None,
    max_new_tokens: int = 48,
    repetition_penalty: float | None = 1.1,
    reference: Scorer | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[tuple[str, str], Baseline]:
    """Replies that ask for each pole, for every dimension in ``instructions``.

    Args:
        model: the causal LM, unsteered.
        tokenizer: its tokenizer.
        judges: dimension → judge (every dimension's judge reads every reply).
        instructions: dimension → ``{"negative": sentence, "positive": sentence}`` a user would say to ask
            for that pole (a built-in dimension's ``pole_prompts``).
        prompts: the plain requests.
        system: the system prompt.
        max_new_tokens: reply length.
        repetition_penalty: HF repetition penalty (``None``: none).
        reference: an optional ``(model, tokenizer)`` to score perplexity with as well.
        batch_size: rows per ``generate``.
        progress: show progress bars.

    Returns:
        ``(dimension, side)`` → :class:`Baseline`.
    """
    keys = [(d, side) for d in instructions for side in ("negative", "positive")]
    rows: list[tuple[str, dict[str, float]]] = [
        (f"{instructions[d][side]} {p}", {}) for d, side in keys for p in prompts
    ]
    texts = generate_replies(
        model,
        tokenizer,
        {},
        rows,
        system=system,
        max_new_tokens=max_new_tokens,
        repetition_penalty=repetition_penalty,
        batch_size=batch_size,
        progress=progress,
        desc="prompted baseline",
    )
    items: list[tuple[str, str, dict[str, float], str]] = [
        (rows[i][0], prompts[i % len(prompts)], {}, text) for i, text in enumerate(texts)
    ]
    scored = score_replies(
        model, tokenizer, items, judges, system=system, reference=reference, progress=progress
    )
    result = {}
    for k, (d, side) in enumerate(keys):
        chunk = scored[k * len(prompts) : (k + 1) * len(prompts)]
        result[(d, side)] = Baseline(d, side, instructions[d][side], chunk)
    return result


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
