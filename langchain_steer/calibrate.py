"""Calibrate a vector's functional range: the strongest steering that keeps the model fluent.

The functional range is the residual-stream norm added at strength ±1. :func:`calibrate_range` finds the
largest norm whose steering keeps the perplexity of held-out replies within ``max_ratio`` (1.5) of the
unsteered model, so that strengths mean the same thing for every vector and model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from langchain_steer.extract import Example, chunked, model_device, pad_right, render_example
from langchain_steer.hooks import steer
from langchain_steer.vectors import SteeringVector

__all__ = ["calibrate_range", "reply_token_nlls", "response_nll"]


@torch.no_grad()
def reply_token_nlls(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 8,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Per-token negative log-likelihoods of each example's reply, given its prompt, under ``model``.

    Returns:
        One float64 CPU tensor per example, of the reply's length in tokens; empty for an empty reply.
    """
    device = model_device(model)
    results: list[torch.Tensor] = [torch.zeros(0, dtype=torch.float64) for _ in examples]
    rendered = [
        (i, *render_example(tokenizer, e)) for i, e in enumerate(examples) if e.response.strip()
    ]
    batches = chunked(rendered, batch_size)
    for batch in tqdm(batches, desc="perplexity", disable=not progress, leave=False):
        ids, mask = pad_right(tokenizer, [r[1] for r in batch], device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, (index, tokens, start) in enumerate(batch):
            # Logit at position t predicts token t+1: reply tokens start..len-1 use logits start-1...
            results[index] = -token_lp[row, start - 1 : len(tokens) - 1].double().cpu()
    return results


def response_nll(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 8,
) -> float:
    """Mean negative log-likelihood per reply token of ``examples`` under ``model`` as it is now.

    Call it inside :func:`~langchain_steer.hooks.steer` to score steered perplexity.
    """
    nlls = reply_token_nlls(model, tokenizer, examples, batch_size=batch_size)
    count = sum(t.numel() for t in nlls)
    return float(sum(float(t.sum()) for t in nlls)) / max(count, 1)


def calibrate_range(
    model: nn.Module,
    tokenizer: Any,
    vector: SteeringVector,
    examples: Sequence[Example],
    *,
    max_ratio: float = 1.5,
    start: float = 1.0,
    limit: float = 256.0,
    refine_steps: int = 5,
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
) -> tuple[float, dict[str, Any]]:
    """Find the largest steering norm that keeps perplexity within ``max_ratio`` of unsteered.

    The norm ``alpha`` is doubled from ``start`` until steering at ``+alpha`` or ``-alpha`` (on every
    position) raises the perplexity of ``examples``' replies above ``max_ratio`` times the unsteered
    perplexity, then bisected ``refine_steps`` times. Use held-out examples of both poles.

    Returns:
        ``(alpha, details)`` where details holds the sweep (alpha → worst ppl ratio). Store alpha as
        the vector's ``functional_range``: ``dataclasses.replace(vector, functional_range=alpha)``.
    """
    base = response_nll(model, tokenizer, examples, batch_size=batch_size)
    sweep: dict[str, float] = {}
    unit = dataclasses.replace(vector, functional_range=1.0)
    bar = tqdm(desc=f"calibrate {vector.name or 'vector'}", disable=not progress, leave=False)

    def ratio(alpha: float) -> float:
        worst = 0.0
        for sign in (1.0, -1.0):
            scaled = dataclasses.replace(unit, functional_range=alpha)
            with steer(model, {"v": scaled}, {"v": sign}, layer_path=layer_path):
                nll = response_nll(model, tokenizer, examples, batch_size=batch_size)
            worst = max(worst, math.exp(nll - base))
        sweep[f"{alpha:.4g}"] = round(worst, 4)
        bar.update(1)
        return worst

    try:
        good, bad = 0.0, start
        while bad <= limit and ratio(bad) <= max_ratio:
            good, bad = bad, bad * 2
        if bad > limit:
            return good, {"sweep": sweep, "max_ratio": max_ratio, "base_nll": base}
        for _ in range(refine_steps):
            middle = 0.5 * (good + bad)
            if ratio(middle) <= max_ratio:
                good = middle
            else:
                bad = middle
    finally:
        bar.close()
    return round(good, 3), {"sweep": sweep, "max_ratio": max_ratio, "base_nll": round(base, 4)}
