"""Generate steered replies over a grid of strengths and score them: the runner behind ``eval sweep``.

A sweep answers a fixed set of neutral prompts at each strength of one vector (greedy decoding, so every
reply is reproducible), then scores each reply with the metrics of :mod:`langchain_steer.eval.metrics`:

* **effect**: relative cosine similarity of the reply's all-MiniLM-L6-v2 embedding to the held-out
  positive-pole corpus against the negative-pole corpus (the ``test`` split of a built-in dimension);
* **fluency**: perplexity of the reply, given its prompt, under the *unsteered* model, and optionally under
  an independent reference model;
* per strength: means with bootstrap confidence intervals, the perplexity ratio to strength 0, and PNE;
* over the sweep: Spearman's ρ of effect against strength, on the per-strength means and on every sample.

Rows of every strength share one batched ``generate`` (each row carries its own strength), so a sweep of 9
strengths over 20 prompts costs about as much as 20 batched replies per strength.

Strengths are normally the usual ``[-1, 1]`` multiples of the vector's ranges. With ``scale="norm"`` they
are absolute residual-stream norms instead (the same norm on both sides).

The result types live in :mod:`langchain_steer.eval.sweep_results` and are re-exported here.

Whether replies read as each pole, and how fluent they are against the prompted-pole baseline, is measured
by :mod:`langchain_steer.eval.pole_eval`; this module keeps the paper's embedding effect and PNE.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from langchain_steer.dimensions import Example
from langchain_steer.eval.fluency import mean_reply_nlls
from langchain_steer.eval.metrics import (
    bootstrap_ci,
    perplexity,
    pne,
    relative_similarity,
    spearman,
)
from langchain_steer.eval.pole_eval import generate_replies
from langchain_steer.eval.settings import ReplySettings
from langchain_steer.eval.sweep_results import (
    Generation,
    PoleCorpus,
    Scale,
    StrengthSummary,
    SweepResult,
)
from langchain_steer.hooks import MAX_STRENGTH
from langchain_steer.vectors import SteeringVector

__all__ = [
    "DEFAULT_STRENGTHS",
    "MAX_SWEEP_ROWS",
    "Generation",
    "PoleCorpus",
    "StrengthSummary",
    "SweepResult",
    "generate_and_score",
    "run_sweep",
    "summarise",
]

DEFAULT_STRENGTHS: tuple[float, ...] = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
"""The default grid: nine evenly spaced strengths across the functional range."""

MAX_SWEEP_ROWS = 20_000
"""Upper bound on prompts × strengths in one sweep, so a typo cannot start a week-long job."""



def _check_strengths(strengths: Sequence[float], scale: Scale) -> list[float]:
    values = sorted({float(s) for s in strengths})
    if len(values) < 2 or 0.0 not in values:
        raise ValueError(
            f"A sweep needs 0 and at least one other strength (0 is the baseline); got {list(strengths)}."
        )
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"Strengths must be finite; got {list(strengths)}.")
    if scale == "strength" and max(abs(v) for v in values) > MAX_STRENGTH:
        raise ValueError(f"Strengths must lie within ±{MAX_STRENGTH:g}; got {values}.")
    if scale not in ("strength", "norm"):
        raise ValueError(f"scale must be 'strength' or 'norm', not {scale!r}.")
    return values


@torch.no_grad()
def generate_and_score(
    model: Any,
    tokenizer: Any,
    vectors: Mapping[str, SteeringVector],
    rows: Sequence[tuple[str, Mapping[str, float]]],
    corpora: Mapping[str, PoleCorpus],
    *,
    settings: ReplySettings | None = None,
) -> list[Generation]:
    """Generate one greedy reply per ``(prompt, strengths)`` row and score it.

    This is the building block of sweeps and of multi-dimension experiments: a row may steer several
    dimensions at once, and every reply is scored against every corpus in ``corpora``.

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        vectors: dimension → vector; strengths multiply each vector's ``functional_range``.
        rows: ``(prompt, {dimension: strength})`` pairs; an empty mapping is the unsteered model.
        corpora: dimension → pole corpus to measure the effect against.
        settings: how replies are generated and scored (default :class:`ReplySettings`).

    Returns:
        One :class:`Generation` per row, in the order of ``rows``.

    Raises:
        ValueError: bad sizes, an unknown dimension, or a strength out of range.
    """
    from langchain_steer.embeddings import embed

    if len(rows) > MAX_SWEEP_ROWS:
        raise ValueError(f"{len(rows)} rows is more than the limit of {MAX_SWEEP_ROWS}.")
    if not corpora:
        raise ValueError("Give at least one pole corpus to measure the effect against.")
    s = settings or ReplySettings()
    texts = generate_replies(
        model,
        tokenizer,
        vectors,
        [(prompt, dict(strengths)) for prompt, strengths in rows],
        settings=s,
    )
    examples = [Example(prompt, text) for (prompt, _), text in zip(rows, texts, strict=True)]
    nlls, reference_nlls, lengths = mean_reply_nlls(model, tokenizer, examples, s)
    embedded = embed(texts)
    effects: dict[str, list[float]] = {}
    for name, corpus in corpora.items():
        scores = relative_similarity(embedded, embed(corpus.positive), embed(corpus.negative))
        effects[name] = [float(x) for x in scores]
    results = []
    for i, ((prompt, strengths), text) in enumerate(zip(rows, texts, strict=True)):
        results.append(
            Generation(
                prompt=prompt,
                strengths={k: float(v) for k, v in strengths.items()},
                text=text,
                tokens=lengths[i],
                effects={name: values[i] for name, values in effects.items()},
                nll=nlls[i],
                reference_nll=None if reference_nlls is None else reference_nlls[i],
            )
        )
    return results


def _log_ppl_ci(
    values: Sequence[float], resamples: int, seed: int
) -> tuple[float, tuple[float, float]]:
    if not values:
        return math.nan, (math.nan, math.nan)
    low, high = bootstrap_ci(values, resamples=resamples, seed=seed)
    return perplexity(values), (math.exp(low), math.exp(high))


def summarise(
    samples: Sequence[Generation],
    dimension: str,
    strength_of: Any = None,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> list[StrengthSummary]:
    """Group replies by strength and compute means, intervals, perplexity ratios and PNE.

    Args:
        samples: scored replies; one group must have strength 0 (the baseline).
        dimension: whose effect to summarise.
        strength_of: maps a :class:`Generation` to its strength on the sweep's axis (default: its
            strength for ``dimension``).
        resamples: bootstrap resamples per interval.
        seed: bootstrap seed.

    Raises:
        ValueError: no replies at strength 0.
    """
    key = strength_of or (lambda g: g.strengths.get(dimension, 0.0))
    groups: dict[float, list[Generation]] = {}
    for sample in samples:
        groups.setdefault(float(key(sample)), []).append(sample)
    if 0.0 not in groups:
        raise ValueError("The sweep has no replies at strength 0, the baseline of every ratio.")

    def stats(group: list[Generation]) -> dict[str, Any]:
        effects = [g.effects[dimension] for g in group]
        nlls = [g.nll for g in group if g.nll is not None]
        ref = [g.reference_nll for g in group if g.reference_nll is not None]
        ppl, ppl_ci = _log_ppl_ci(nlls, resamples, seed)
        ref_ppl, ref_ci = _log_ppl_ci(ref, resamples, seed) if ref else (None, None)
        return {
            "effect": sum(effects) / len(effects),
            "effect_ci": bootstrap_ci(effects, resamples=resamples, seed=seed),
            "ppl": ppl,
            "ppl_ci": ppl_ci,
            "reference_ppl": ref_ppl,
            "reference_ppl_ci": ref_ci,
            "empty": len(group) - len(nlls),
            "mean_tokens": sum(g.tokens for g in group) / len(group),
        }

    computed = {s: stats(g) for s, g in groups.items()}
    base = computed[0.0]
    summaries = []
    for strength in sorted(groups):
        c = computed[strength]
        ratio = c["ppl"] / base["ppl"] if base["ppl"] > 0 else math.nan
        ref_ratio = (
            c["reference_ppl"] / base["reference_ppl"]
            if c["reference_ppl"] is not None and base["reference_ppl"]
            else None
        )
        summaries.append(
            StrengthSummary(
                strength=strength,
                n=len(groups[strength]),
                empty=c["empty"],
                effect=c["effect"],
                effect_ci=c["effect_ci"],
                ppl=c["ppl"],
                ppl_ci=c["ppl_ci"],
                ppl_ratio=ratio,
                pne=(
                    pne(c["effect"], base["effect"], c["ppl"], base["ppl"])
                    if math.isfinite(c["ppl"]) and c["ppl"] > 0
                    else math.nan
                ),
                mean_tokens=c["mean_tokens"],
                reference_ppl=c["reference_ppl"],
                reference_ppl_ci=c["reference_ppl_ci"],
                reference_ppl_ratio=ref_ratio,
            )
        )
    return summaries


def run_sweep(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    *,
    prompts: Sequence[str],
    corpus: PoleCorpus,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    scale: Scale = "strength",
    resamples: int = 1000,
    seed: int = 0,
    settings: ReplySettings | None = None,
) -> SweepResult:
    """Sweep one vector over ``strengths`` on ``prompts`` and summarise effect and fluency.

    Args:
        model: the causal LM the vector was made for.
        tokenizer: its tokenizer.
        vector: the steering vector; its ``name`` labels the results.
        prompts: neutral requests (the built-in dimensions' ``eval_prompts`` are held out).
        corpus: the pole corpora the effect is measured against.
        strengths: the grid; it must contain 0. With ``scale="strength"`` each is a multiple of the
            vector's ``functional_range`` (within ±2); with ``scale="norm"`` each is the absolute norm added
            to the residual stream.
        scale: ``"strength"`` or ``"norm"``, as above.
        resamples: bootstrap resamples per interval (the intervals are 95 %).
        seed: bootstrap seed.
        settings: how replies are generated and scored (default :class:`ReplySettings`).

    Returns:
        A :class:`SweepResult`; write it out with :func:`langchain_steer.eval.report.write_report`.

    Raises:
        ValueError: no prompts, a grid without 0, strengths out of range, or too many rows.
    """
    if not prompts:
        raise ValueError("A sweep needs at least one prompt.")
    grid = _check_strengths(strengths, scale)
    name = vector.name or "vector"
    if scale == "norm":
        # The hooks bound strengths to ±2, so express norms as fractions of the largest one.
        top = max(abs(s) for s in grid)
        steered = dataclasses.replace(vector, functional_range=top, negative_range=top)
        factors = [s / top for s in grid]
    else:
        steered, factors = vector, grid
    rows = [(p, {name: f} if f else {}) for f in factors for p in prompts]
    if len(rows) > MAX_SWEEP_ROWS:
        raise ValueError(f"{len(rows)} replies is more than the limit of {MAX_SWEEP_ROWS}.")
    started = time.perf_counter()
    samples = generate_and_score(
        model,
        tokenizer,
        {name: steered},
        rows,
        {name: corpus},
        settings=settings,
    )
    if scale == "norm":
        # Report every reply on the axis that was asked for: absolute norms.
        samples = [
            dataclasses.replace(g, strengths={name: g.strengths.get(name, 0.0) * top})
            if g.strengths
            else g
            for g in samples
        ]
    summaries = summarise(samples, name, resamples=resamples, seed=seed)
    per_sample = [(g.strengths.get(name, 0.0), g.effects[name]) for g in samples]
    return SweepResult(
        dimension=name,
        poles=tuple(vector.poles),  # type: ignore[arg-type]
        model_id=vector.model_id or str(getattr(model.config, "name_or_path", "")),
        vector={
            "layers": vector.layers,
            "method": vector.method,
            "functional_range": vector.functional_range,
            "negative_range": vector.negative_side[1],
        },
        scale=scale,
        summaries=summaries,
        spearman=spearman([s.strength for s in summaries], [s.effect for s in summaries]),
        spearman_samples=spearman([x for x, _ in per_sample], [y for _, y in per_sample]),
        samples=samples,
        settings={
            "prompts": list(prompts),
            **(settings or ReplySettings()).describe(),
            "effect": "relative cosine similarity, all-MiniLM-L6-v2",
            "corpus_sizes": [len(corpus.negative), len(corpus.positive)],
            "confidence": 0.95,
            "resamples": resamples,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
