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

Whether replies read as each pole, and how fluent they are against the prompted-pole baseline, is measured
by :mod:`langchain_steer.eval.pole_eval`; this module keeps the paper's embedding effect and PNE.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from langchain_steer.dimensions import Dimension, Example, load_dimension
from langchain_steer.eval.fluency import reply_token_nlls
from langchain_steer.eval.metrics import (
    bootstrap_ci,
    perplexity,
    pne,
    relative_similarity,
    spearman,
)
from langchain_steer.eval.pole_eval import generate_replies
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

Scale = Literal["strength", "norm"]
Scored = tuple[Any, Any]  # (model, tokenizer)


@dataclasses.dataclass(frozen=True)
class PoleCorpus:
    """Texts written at each pole of a dimension, used as the reference points of the effect metric.

    Attributes:
        negative: texts of the negative pole (e.g. budget replies).
        positive: texts of the positive pole (e.g. luxury replies).
    """

    negative: tuple[str, ...]
    positive: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.negative or not self.positive:
            raise ValueError("A pole corpus needs at least one text at each pole.")
        object.__setattr__(self, "negative", tuple(self.negative))
        object.__setattr__(self, "positive", tuple(self.positive))

    @classmethod
    def from_dimension(
        cls, dimension: str | Dimension, split: Literal["train", "test", "all", "held_out"] = "test"
    ) -> PoleCorpus:
        """The replies of a dimension's ``split``; ``test`` is held out from extraction.

        ``dimension`` is a built-in dimension's name or a parsed examples file
        (:func:`~langchain_steer.dimensions.read_examples`). ``"held_out"`` is ``test``, or every reply
        of a file that has no ``test`` split.
        """
        data = load_dimension(dimension) if isinstance(dimension, str) else dimension
        negative, positive = data.held_out() if split == "held_out" else data.examples(split)
        return cls(tuple(e.response for e in negative), tuple(e.response for e in positive))


@dataclasses.dataclass(frozen=True)
class Generation:
    """One scored reply.

    Attributes:
        prompt: the user request.
        strengths: dimension → strength the reply was generated with (absent means 0).
        text: the reply, stripped.
        tokens: its length in tokens of the steered model's tokenizer.
        effects: dimension → relative similarity to that dimension's poles.
        nll: mean negative log-likelihood per reply token under the unsteered model (None when empty).
        reference_nll: the same under the reference model, if one was given.
    """

    prompt: str
    strengths: dict[str, float]
    text: str
    tokens: int
    effects: dict[str, float]
    nll: float | None
    reference_nll: float | None = None


@dataclasses.dataclass(frozen=True)
class StrengthSummary:
    """The statistics of all replies at one strength.

    ``ppl`` is the geometric mean of the replies' perplexities (``exp`` of their mean per-token NLL), so
    each reply counts once whatever its length. Intervals are percentile bootstraps over replies.
    """

    strength: float
    n: int
    empty: int
    effect: float
    effect_ci: tuple[float, float]
    ppl: float
    ppl_ci: tuple[float, float]
    ppl_ratio: float
    pne: float
    mean_tokens: float
    reference_ppl: float | None = None
    reference_ppl_ci: tuple[float, float] | None = None
    reference_ppl_ratio: float | None = None


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Everything a sweep measured, JSON-serialisable with :meth:`to_dict`.

    Attributes:
        dimension: the swept dimension.
        poles: ``(negative, positive)`` pole names.
        model_id: the steered model.
        vector: the vector's layers, method and functional range at sweep time.
        scale: ``"strength"`` (multiples of the functional range) or ``"norm"`` (absolute norms).
        summaries: one :class:`StrengthSummary` per strength, in increasing order.
        spearman: ρ of the mean effect against strength, over the per-strength means.
        spearman_samples: ρ of effect against strength over every reply.
        samples: every scored reply.
        settings: prompts, max_new_tokens, reference model, seconds taken...
    """

    dimension: str
    poles: tuple[str, str]
    model_id: str
    vector: dict[str, Any]
    scale: Scale
    summaries: list[StrengthSummary]
    spearman: float
    spearman_samples: float
    samples: list[Generation]
    settings: dict[str, Any]

    @property
    def strengths(self) -> list[float]:
        """The swept strengths, in increasing order."""
        return [s.strength for s in self.summaries]

    def at(self, strength: float) -> StrengthSummary:
        """The summary at ``strength``.

        Raises:
            KeyError: the sweep did not include it.
        """
        for summary in self.summaries:
            if math.isclose(summary.strength, strength, abs_tol=1e-9):
                return summary
        raise KeyError(f"Strength {strength:g} is not in this sweep ({self.strengths}).")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the schema of ``sweep.json``)."""
        return {
            "schema": "langchain-steer/sweep@1",
            "dimension": self.dimension,
            "poles": list(self.poles),
            "model_id": self.model_id,
            "vector": dict(self.vector),
            "scale": self.scale,
            "spearman": _finite(self.spearman),
            "spearman_samples": _finite(self.spearman_samples),
            "summaries": [_jsonable(dataclasses.asdict(s)) for s in self.summaries],
            "samples": [_jsonable(dataclasses.asdict(s)) for s in self.samples],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepResult:
        """Rebuild a result from :meth:`to_dict`'s output (for example a loaded ``sweep.json``)."""
        summaries = []
        for raw in data["summaries"]:
            fields = dict(raw)
            for key in ("effect_ci", "ppl_ci", "reference_ppl_ci"):
                if fields.get(key) is not None:
                    fields[key] = tuple(_nan(v) for v in fields[key])
            for key in ("effect", "ppl", "ppl_ratio", "pne"):  # NaN was written as null
                fields[key] = _nan(fields[key])
            summaries.append(StrengthSummary(**fields))
        return cls(
            dimension=data["dimension"],
            poles=(data["poles"][0], data["poles"][1]),
            model_id=data["model_id"],
            vector=dict(data["vector"]),
            scale=data["scale"],
            summaries=summaries,
            spearman=_nan(data["spearman"]),
            spearman_samples=_nan(data["spearman_samples"]),
            samples=[Generation(**raw) for raw in data["samples"]],
            settings=dict(data["settings"]),
        )


def _finite(value: Any) -> Any:
    """JSON has no NaN: write it as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _nan(value: Any) -> Any:
    return math.nan if value is None else value


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: [_finite(x) for x in v] if isinstance(v, tuple | list) else _finite(v)
        for k, v in record.items()
    }


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
    max_new_tokens: int = 48,
    batch_size: int = 16,
    reference: Scored | None = None,
    progress: bool = True,
    system: str | None = None,
    repetition_penalty: float | None = None,
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
        max_new_tokens: reply length limit (1 to 1024).
        batch_size: rows per ``generate`` (1 to 256).
        reference: an optional ``(model, tokenizer)`` to score perplexity with as well.
        progress: show progress bars.
        system: a system prompt before every request (replies are scored with it too).
        repetition_penalty: HF repetition penalty (``None``: none).

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
    texts = generate_replies(
        model,
        tokenizer,
        vectors,
        [(prompt, dict(strengths)) for prompt, strengths in rows],
        system=system,
        max_new_tokens=max_new_tokens,
        repetition_penalty=repetition_penalty,
        batch_size=batch_size,
        progress=progress,
    )
    examples = [Example(prompt, text) for (prompt, _), text in zip(rows, texts, strict=True)]
    nlls = reply_token_nlls(model, tokenizer, examples, system=system, progress=progress)
    reference_nlls = (
        reply_token_nlls(*reference, examples, system=system, progress=progress)
        if reference is not None
        else None
    )
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
                tokens=int(nlls[i].numel()),
                effects={name: values[i] for name, values in effects.items()},
                nll=float(nlls[i].mean()) if nlls[i].numel() else None,
                reference_nll=(
                    float(reference_nlls[i].mean())
                    if reference_nlls is not None and reference_nlls[i].numel()
                    else None
                ),
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
    max_new_tokens: int = 48,
    batch_size: int = 16,
    reference: Scored | None = None,
    resamples: int = 1000,
    seed: int = 0,
    progress: bool = True,
    system: str | None = None,
    repetition_penalty: float | None = None,
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
        max_new_tokens: reply length.
        batch_size: rows per batched ``generate``.
        reference: optional ``(model, tokenizer)`` of an independent model to score perplexity with.
        resamples: bootstrap resamples per interval (the intervals are 95 %).
        seed: bootstrap seed.
        progress: show progress bars.
        system: a system prompt before every request.
        repetition_penalty: HF repetition penalty (``None``: none).

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
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        reference=reference,
        progress=progress,
        system=system,
        repetition_penalty=repetition_penalty,
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
            "max_new_tokens": max_new_tokens,
            "decoding": "greedy",
            "system": system,
            "repetition_penalty": repetition_penalty,
            "effect": "relative cosine similarity, all-MiniLM-L6-v2",
            "corpus_sizes": [len(corpus.negative), len(corpus.positive)],
            "reference_model": (
                str(getattr(reference[0].config, "name_or_path", "")) if reference else None
            ),
            "confidence": 0.95,
            "resamples": resamples,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
