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

The result types live in :mod:`langchain_steer.eval.pole_results` and are re-exported here. Everything is
greedy, so a run is reproducible; rows of every strength share batched ``generate`` calls.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from langchain_steer.dimensions.examples import Example
from langchain_steer.eval.fluency import english_vocabulary, mean_reply_nlls
from langchain_steer.eval.judge import PoleJudge, embed_statements
from langchain_steer.eval.metrics import degeneration
from langchain_steer.eval.pole_results import (
    MIN_BASELINE,
    Baseline,
    PoleEvaluation,
    Reply,
    geometric_ppl,
)
from langchain_steer.eval.settings import ReplySettings
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


MAX_ROWS = 20_000
"""Upper bound on the replies of one run, so that a typo cannot start a week-long job."""



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
    settings: ReplySettings | None = None,
    desc: str = "generate",
) -> list[str]:
    """Greedy replies to ``(prompt, strengths)`` rows, each row steered on its own, in batches.

    Rows of similar prompt length share a batch, so little padding is computed. ``settings`` (default
    :class:`ReplySettings`) sets the system prompt, length, penalty, batch size and layer path; ``desc``
    labels the progress bar.

    Raises:
        ValueError: too many rows, an unknown dimension, or a strength out of range.
    """
    s = settings or ReplySettings()
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} replies is more than the limit of {MAX_ROWS}.")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    chunks = chunked(order, s.batch_size)
    texts: dict[int, str] = {}
    for chunk in tqdm(chunks, desc=desc, disable=not s.progress, leave=False):
        replies = generate_batch(
            model,
            tokenizer,
            [_chat(s.system, rows[i][0]) for i in chunk],
            vectors,
            [dict(rows[i][1]) for i in chunk],
            max_new_tokens=s.max_new_tokens,
            layer_path=s.layer_path,
            **s.generate_kwargs,
        )
        texts.update(zip(chunk, replies, strict=True))
    return [texts[i] for i in range(len(rows))]


def score_replies(
    model: Any,
    tokenizer: Any,
    items: Sequence[tuple[str, str, Mapping[str, float], str]],
    judges: Mapping[str, PoleJudge],
    *,
    settings: ReplySettings | None = None,
) -> list[Reply]:
    """Judge, check and score ``(prompt, request, strengths, text)`` items (see :class:`Reply`).

    Perplexity is conditioned on the plain ``request`` with the settings' system prompt, under ``model``
    unsteered (and under the settings' reference model, when one is given).
    """
    vocabulary = english_vocabulary()
    examples = [Example(request, text) for _, request, _, text in items]
    nlls, reference_nlls, _ = mean_reply_nlls(model, tokenizer, examples, settings or ReplySettings())
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
                nll=nlls[i],
                reference_nll=None if reference_nlls is None else reference_nlls[i],
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
    settings: ReplySettings | None = None,
) -> dict[tuple[str, str], Baseline]:
    """Replies that ask for each pole, for every dimension in ``instructions``.

    Args:
        model: the causal LM, unsteered.
        tokenizer: its tokenizer.
        judges: dimension → judge (every dimension's judge reads every reply).
        instructions: dimension → ``{"negative": sentence, "positive": sentence}`` a user would say to ask
            for that pole (a built-in dimension's ``pole_prompts``).
        prompts: the plain requests.
        settings: how replies are generated and scored (default :class:`ReplySettings`).

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
        settings=settings,
        desc="prompted baseline",
    )
    items: list[tuple[str, str, dict[str, float], str]] = [
        (rows[i][0], prompts[i % len(prompts)], {}, text) for i, text in enumerate(texts)
    ]
    scored = score_replies(model, tokenizer, items, judges, settings=settings)
    result = {}
    for k, (d, side) in enumerate(keys):
        chunk = scored[k * len(prompts) : (k + 1) * len(prompts)]
        result[(d, side)] = Baseline(d, side, instructions[d][side], chunk)
    return result


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
    settings: ReplySettings | None = None,
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
        settings: how every reply, the baseline's included, is generated and scored (default
            :class:`ReplySettings`: 48 greedy tokens, repetition penalty 1.1, no system prompt).

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
        settings=settings,
    )
    replies = score_replies(
        model,
        tokenizer,
        [(p, p, s, t) for (p, s), t in zip(rows, texts, strict=True)],
        judges,
        settings=settings,
    )
    baselines = (
        prompted_baseline(
            model,
            tokenizer,
            judges,
            {d: instructions[d] for d in steered if d in instructions},
            prompts,
            settings=settings,
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
            **(settings or ReplySettings()).describe(),
            "model_id": str(getattr(getattr(model, "config", None), "name_or_path", "")),
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
