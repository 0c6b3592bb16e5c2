"""Pure metric functions for evaluating steering: effect, fluency, PNE and their statistics.

Nothing here loads a model: every function takes numbers or embeddings and returns numbers, so runners and
your own notebooks share one definition of each metric.

* **Effect** (as in the paper): embed a generated text and take its mean cosine similarity to a held-out
  corpus of the positive pole minus its mean cosine similarity to a corpus of the negative pole
  (:func:`relative_similarity`). Positive means "reads like the positive pole".
* **Fluency**: perplexity of the generated text under a scoring model, from per-token negative
  log-likelihoods (:func:`perplexity`); compared across strengths as a ratio to the unsteered perplexity.
* **PNE**, perplexity-normalised effect (von Rütte et al.; the paper):
  ``(effect(α) − effect(0)) / (ppl(α) / ppl(0))`` (:func:`pne`).
* **Statistics**: Spearman's ρ of effect against strength (:func:`spearman`), percentile bootstrap confidence
  intervals (:func:`bootstrap_ci`).
* **Degeneration**, measured on the text itself: the share of repeated word 4-grams
  (:func:`repeated_ngram_rate`), distinct-n (:func:`distinct_n`), the share of non-words
  (:func:`nonword_rate`), characters outside the Latin script (:func:`foreign_script`), and one verdict
  (:func:`degeneration`). Perplexity under the steered model's own family misses loops (they are likely) and
  rewards copying; these catch what it misses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence

import torch

__all__ = [
    "MAX_NONWORD_RATE",
    "MAX_REPEATED_NGRAM_RATE",
    "MIN_WORDS",
    "bootstrap_ci",
    "degeneration",
    "distinct_n",
    "foreign_script",
    "nonword_rate",
    "perplexity",
    "pne",
    "ranks",
    "relative_similarity",
    "repeated_ngram_rate",
    "spearman",
]

MAX_REPEATED_NGRAM_RATE = 0.35
"""A reply whose word 4-grams repeat more often than this loops (unsteered demo replies: at most 0.3)."""

MAX_NONWORD_RATE = 0.15
"""A reply with a larger share of lower-case words outside the vocabulary invents words."""

MIN_WORDS = 3
"""A reply with fewer words is empty or cut off."""

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
# Latin letters, digits, punctuation and typographic symbols; anything else is another writing system.
_FOREIGN = re.compile(
    r"[^\x00-\x7F\u00A0-\u024F\u1E00-\u1EFF\u2000-\u206F\u20A0-\u20CF\u2100-\u214F]{2,}"
)
_SUFFIXES = ("s", "es", "ed", "d", "ing", "ly", "er", "ers", "est", "ness", "ful")


def relative_similarity(
    embeddings: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> torch.Tensor:
    """Effect of each text: mean cosine to the positive corpus minus mean cosine to the negative corpus.

    Args:
        embeddings: ``(n, d)`` embeddings of the texts to score.
        positive: ``(p, d)`` embeddings of the positive pole's corpus.
        negative: ``(q, d)`` embeddings of the negative pole's corpus.

    Returns:
        ``(n,)`` values in [−2, 2]; 0 means equally close to both poles.

    Raises:
        ValueError: empty corpora or mismatched embedding sizes.
    """
    if positive.numel() == 0 or negative.numel() == 0:
        raise ValueError("Both pole corpora need at least one embedding.")
    if not embeddings.shape[-1] == positive.shape[-1] == negative.shape[-1]:
        raise ValueError(
            f"Embedding sizes differ: texts {embeddings.shape[-1]}, positive {positive.shape[-1]}, "
            f"negative {negative.shape[-1]}."
        )
    unit = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    pos = torch.nn.functional.normalize(positive.float(), dim=-1)
    neg = torch.nn.functional.normalize(negative.float(), dim=-1)
    return (unit @ pos.T).mean(-1) - (unit @ neg.T).mean(-1)


def perplexity(token_nlls: Sequence[float] | torch.Tensor) -> float:
    """Perplexity from per-token negative log-likelihoods (natural log): ``exp(mean(nll))``.

    Raises:
        ValueError: no tokens.
    """
    values = torch.as_tensor(token_nlls, dtype=torch.float64).flatten()
    if values.numel() == 0:
        raise ValueError("Perplexity needs at least one token.")
    return float(torch.exp(values.mean()))


def pne(effect: float, effect_zero: float, ppl: float, ppl_zero: float) -> float:
    """Perplexity-normalised effect: ``(effect − effect_zero) / (ppl / ppl_zero)``.

    Raises:
        ValueError: a non-positive perplexity.
    """
    if ppl <= 0 or ppl_zero <= 0:
        raise ValueError(f"Perplexities must be positive, not {ppl!r} and {ppl_zero!r}.")
    return (effect - effect_zero) / (ppl / ppl_zero)


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, with tied values sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (Pearson correlation of their ranks; ties averaged).

    Returns ``nan`` when either side is constant.

    Raises:
        ValueError: sequences of different lengths, or fewer than two points.
    """
    if len(x) != len(y):
        raise ValueError(f"Spearman needs equal lengths, not {len(x)} and {len(y)}.")
    if len(x) < 2:
        raise ValueError("Spearman needs at least two points.")
    rx, ry = ranks(list(x)), ranks(list(y))
    mean_x, mean_y = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mean_x) * (b - mean_y) for a, b in zip(rx, ry, strict=True))
    var_x = sum((a - mean_x) ** 2 for a in rx)
    var_y = sum((b - mean_y) ** 2 for b in ry)
    if var_x == 0 or var_y == 0:
        return math.nan
    return cov / math.sqrt(var_x * var_y)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[torch.Tensor], torch.Tensor] = torch.mean,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``values``.

    Args:
        values: the sample (at least one value).
        statistic: reduces a 1-D tensor to a number (default: the mean).
        resamples: bootstrap resamples (1 to 100000).
        confidence: the interval's coverage, in (0, 1).
        seed: seeds the resampling, so intervals are reproducible.

    Returns:
        ``(low, high)``. With a single value both ends equal it.

    Raises:
        ValueError: an empty sample or settings out of range.
    """
    sample = torch.as_tensor(list(values), dtype=torch.float64)
    if sample.numel() == 0:
        raise ValueError("A bootstrap needs at least one value.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}.")
    if not 1 <= resamples <= 100_000:
        raise ValueError(f"resamples must be from 1 to 100000, not {resamples!r}.")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, sample.numel(), (resamples, sample.numel()), generator=generator)
    stats = torch.stack([statistic(sample[row]) for row in picks]).to(torch.float64)
    alpha = (1 - confidence) / 2
    low, high = torch.quantile(stats, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return float(low), float(high)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def repeated_ngram_rate(text: str, n: int = 4) -> float:
    """Share of the word ``n``-grams of ``text`` that repeat an earlier one (0 when there are none)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}.")
    words = _words(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1 - len(set(grams)) / len(grams)


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct word ``n``-grams over all word ``n``-grams (1.0 for a text too short to have any)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}.")
    words = _words(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 if not grams else len(set(grams)) / len(grams)


def nonword_rate(text: str, vocabulary: Collection[str]) -> float:
    """Share of the lower-case words of ``text`` that are not in ``vocabulary``, even without a suffix.

    Capitalised words are skipped: names of places and dishes are legitimately unknown. Hyphenated words
    count as known when each part is.
    """

    def known(word: str) -> bool:
        if word in vocabulary:
            return True
        if any(word.endswith(s) and word[: -len(s)] in vocabulary for s in _SUFFIXES):
            return True
        parts = re.split(r"['’-]", word)
        return len(parts) > 1 and all(not p or p in vocabulary or known(p) for p in parts)

    words = [w for w in _WORD.findall(text) if w[:1].islower()]
    return 0.0 if not words else sum(not known(w.lower()) for w in words) / len(words)


def foreign_script(text: str) -> bool:
    """Whether ``text`` holds a run of characters of a non-Latin writing system (a switch of language)."""
    return bool(_FOREIGN.search(text))


def degeneration(text: str, vocabulary: Collection[str]) -> list[str]:
    """The reasons ``text`` reads as broken, empty when it reads as ordinary prose.

    Reasons: ``"short"`` (fewer than :data:`MIN_WORDS` words), ``"repetition"`` (repeated 4-grams above
    :data:`MAX_REPEATED_NGRAM_RATE`), ``"non-words"`` (above :data:`MAX_NONWORD_RATE`), and
    ``"foreign script"``.
    """
    reasons = []
    if len(_words(text)) < MIN_WORDS:
        reasons.append("short")
    if repeated_ngram_rate(text) > MAX_REPEATED_NGRAM_RATE:
        reasons.append("repetition")
    if nonword_rate(text, vocabulary) > MAX_NONWORD_RATE:
        reasons.append("non-words")
    if foreign_script(text):
        reasons.append("foreign script")
    return reasons
