"""Fluency of generated replies: perplexity under a scoring model, and the vocabulary for non-word checks.

* :func:`reply_token_nlls` scores each reply, given its request (and the system prompt it was written
  under), under any causal LM: the unsteered model itself, or an independent reference model such as
  Gemma-3-270M. Perplexities are compared as ratios, never across models.
* :func:`english_vocabulary` is the word list behind :func:`langchain_steer.eval.metrics.nonword_rate`:
  Webster's Second and GCIDE (the ``english-words`` package) plus every whole word of the all-MiniLM-L6-v2
  tokenizer, which adds recent words ("brunch", "foodie").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from langchain_steer.dimensions.examples import Example
from langchain_steer.eval.settings import ReplySettings
from langchain_steer.models import model_lock
from langchain_steer.prompts import render_example
from langchain_steer.tensors import chunked, model_device, pad_right

__all__ = ["MeanNlls", "english_vocabulary", "mean_reply_nlls", "reply_token_nlls"]

MeanNlls = tuple[list[float | None], list[float | None] | None, list[int]]
"""``(under the model, under the reference model or None, reply lengths in tokens)``."""

_vocabulary: frozenset[str] | None = None
_vocabulary_lock = threading.Lock()


@torch.no_grad()
def reply_token_nlls(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    system: str | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Per-token negative log-likelihoods of each example's reply, given its request, under ``model``.

    Args:
        model: the scoring model, as it is now (call it inside ``steer`` to score a steered model).
        tokenizer: its tokenizer.
        examples: ``(request, reply)`` pairs.
        system: the system prompt rendered before each request.
        batch_size: rows per forward pass.
        progress: show a progress bar.

    Returns:
        One float64 CPU tensor per example, of the reply's length in tokens; empty for an empty reply.
    """
    device = model_device(model)
    results: list[torch.Tensor] = [torch.zeros(0, dtype=torch.float64) for _ in examples]
    rendered = [
        (i, *render_example(tokenizer, e, system))
        for i, e in enumerate(examples)
        if e.response.strip()
    ]
    for batch in tqdm(
        chunked(rendered, batch_size), desc="perplexity", disable=not progress, leave=False
    ):
        ids, mask = pad_right(tokenizer, [r[1] for r in batch], device)
        with model_lock(model):  # an "unsteered" score must not run under a serving batch's hooks
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        token_lp = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, (index, tokens, start) in enumerate(batch):
            # The logit at position t predicts token t+1: reply tokens start..len-1 use logits start-1...
            results[index] = -token_lp[row, start - 1 : len(tokens) - 1].double().cpu()
    return results


def mean_reply_nlls(
    model: nn.Module, tokenizer: Any, examples: Sequence[Example], settings: ReplySettings
) -> MeanNlls:
    """Each reply's mean per-token NLL under ``model`` and under the settings' reference model.

    An empty reply scores ``None``. Replies are conditioned on their request and the settings' system
    prompt. The reference list is ``None`` when the settings give no reference model.
    """

    def means(values: list[torch.Tensor]) -> list[float | None]:
        return [float(v.mean()) if v.numel() else None for v in values]

    common: dict[str, Any] = {"system": settings.system, "progress": settings.progress}
    own = reply_token_nlls(model, tokenizer, examples, **common)
    reference = (
        means(reply_token_nlls(*settings.reference, examples, **common))
        if settings.reference is not None
        else None
    )
    return means(own), reference, [int(v.numel()) for v in own]


def english_vocabulary() -> frozenset[str]:
    """Lower-case English words (about 290,000), loaded once per process.

    Raises:
        ImportError: ``english-words`` or the MiniLM package is missing (the message says what to install).
    """
    global _vocabulary
    with _vocabulary_lock:
        if _vocabulary is None:
            try:
                from english_words import get_english_words_set
            except ImportError as error:
                raise ImportError(
                    "The non-word check needs the word lists of `pip install english-words`."
                ) from error
            from transformers import AutoTokenizer

            from langchain_steer.embeddings import encoder_path

            words = set(get_english_words_set(["web2", "gcide"], lower=True, alpha=True))
            vocab = AutoTokenizer.from_pretrained(encoder_path()).get_vocab()
            words.update(w for w in vocab if w.isalpha())
            _vocabulary = frozenset(words)
        return _vocabulary
