"""Evaluating steering. So far: the pure metrics of :mod:`langchain_steer.eval.metrics`."""

from langchain_steer.eval.metrics import (
    bootstrap_ci,
    perplexity,
    pne,
    ranks,
    relative_similarity,
    spearman,
)

__all__ = ["bootstrap_ci", "perplexity", "pne", "ranks", "relative_similarity", "spearman"]
