"""Replies generated and scored the way every measurement reads them, and the prompted-pole baseline.

:func:`generate_replies` writes greedy replies, each row with its own steering; :func:`score_replies` records
for every reply what every dimension's :class:`~langchain_steer.eval.judge.PoleJudge` reads in it, whether
it is degenerate (:func:`langchain_steer.eval.metrics.degeneration`), and its perplexity, given the
request, under the unsteered model and optionally under a reference model.

Fluency is judged against the **prompted-pole baseline**: replies that reach the same pole by *asking* for
it ("I'm on a tight budget, so I want cheap or free options. <request>"), scored the same way, given the
plain request. A reply that moves to a pole must use that pole's words, which the plain request does not
predict; comparing with unsteered replies would charge that to fluency. Only the baseline replies the judge
reads as the asked-for pole count (the demo model ignores some requests); when fewer than
:data:`MIN_BASELINE` do, all of them count. :func:`prompted_baseline` builds it;
:func:`langchain_steer.eval.pole_eval.evaluate_poles` and
:func:`langchain_steer.eval.range_calibration.calibrate_range` both use these pieces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from langchain_steer.dimensions.examples import Example
from langchain_steer.eval.fluency import english_vocabulary, reply_token_nlls
from langchain_steer.eval.judge import Label, PoleJudge, embed_statements
from langchain_steer.eval.metrics import degeneration
from langchain_steer.generate import generate_batch
from langchain_steer.tensors import chunked
from langchain_steer.vectors import SteeringVector

__all__ = [
    "MAX_ROWS",
    "MIN_BASELINE",
    "Baseline",
    "Reply",
    "Scorer",
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
