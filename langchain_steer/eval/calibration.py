"""Set a vector's functional range from a sweep of generated text: the runner behind ``eval calibrate``.

The functional range is the residual-stream norm that strength ±1 adds. It is chosen as **the largest norm
α on a grid such that, for every grid norm up to α (on both signs):**

1. the perplexity ratio of the steered replies to the unsteered replies (under the unsteered model) stays
   at or below ``max_ratio`` (1.5 by default), and
2. the mean effect is still monotone: in the window ``[−α, α]`` it never falls from one grid point to the
   next by more than the sampling noise. By default the allowed dip is the mean of the two points' 95 %
   bootstrap half-widths, so a dip counts only when it leaves both intervals' typical reach; pass a number
   as ``tolerance`` for a fixed allowance instead.

The grid is a set of fractions of the typical residual-stream norm at the vector's layers, measured on the
same prompts (:func:`langchain_steer.eval.diagnostics.residual_norms`), so the same defaults suit models whose
activations differ in scale by orders of magnitude.

This replaces an earlier, cheaper estimate (:func:`langchain_steer.calibrate.calibrate_range`, which scores
fixed held-out replies under the steered model) by the quantity users see: the text the steered model writes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from langchain_steer.eval.diagnostics import residual_norms
from langchain_steer.eval.sweep import PoleCorpus, StrengthSummary, SweepResult, run_sweep
from langchain_steer.vectors import SteeringVector

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_TOLERANCE",
    "CalibrationResult",
    "calibrate_from_sweep",
    "calibrate_vector",
    "choose_range",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08)
"""Candidate norms, as fractions of the median residual norm at the vector's layers."""

DEFAULT_TOLERANCE: float | None = None
"""``None``: a dip counts as a turn only when larger than the two points' mean 95 % half-width (see above).

Why not 0: with 12 to 20 prompts the 95 % intervals of a mean effect on the demo model are ±0.01 to ±0.04
wide, and a strict rule stopped `age` at the first grid point over a dip of 0.011 inside an otherwise
monotone sweep (ρ = 0.99)."""


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate_vector` decided, and why.

    Attributes:
        vector: the input vector with the new ``functional_range`` and ``extra["calibration"]``.
        functional_range: the chosen norm α.
        residual_norm: the residual norm the grid was scaled by: per layer the median over prompt tokens,
            then the upper median over the vector's layers.
        checks: per grid norm: ``norm``, ``ppl_ratio`` (the worse sign), ``monotone``, ``passed``.
        sweep: the sweep over norms the choice was made from.
    """

    vector: SteeringVector
    functional_range: float
    residual_norm: float
    checks: list[dict[str, Any]]
    sweep: SweepResult


def _allowed_dip(a: StrengthSummary, b: StrengthSummary, tolerance: float | None) -> float:
    if tolerance is not None:
        return tolerance
    return ((a.effect_ci[1] - a.effect_ci[0]) + (b.effect_ci[1] - b.effect_ci[0])) / 4


def choose_range(
    result: SweepResult, *, max_ratio: float = 1.5, tolerance: float | None = DEFAULT_TOLERANCE
) -> tuple[float, list[dict[str, Any]]]:
    """Pick the functional range from a sweep over norms (``scale="norm"``).

    Returns:
        ``(alpha, checks)``: the largest passing norm and the check at every norm (see the module doc).

    Raises:
        ValueError: the sweep is not over norms, has no ± pairs, or not even the smallest norm passes (the
            message gives the numbers; sweep a finer grid, or loosen ``max_ratio``).
    """
    if result.scale != "norm":
        raise ValueError("choose_range needs a sweep over norms (run_sweep(..., scale='norm')).")
    if not max_ratio > 1 or (tolerance is not None and not tolerance >= 0):
        raise ValueError(
            f"max_ratio must be > 1 and tolerance >= 0, not {max_ratio} and {tolerance}."
        )
    present = set(result.strengths)
    magnitudes = sorted(m for m in present if m > 0 and -m in present)
    if not magnitudes:
        raise ValueError("The sweep has no pair of opposite norms (±α) to calibrate from.")
    checks: list[dict[str, Any]] = []
    best = 0.0
    failed = False
    for m in magnitudes:
        ratio = max(result.at(m).ppl_ratio, result.at(-m).ppl_ratio)
        window = [s for s in result.summaries if abs(s.strength) <= m + 1e-9]
        monotone = all(
            b.effect >= a.effect - _allowed_dip(a, b, tolerance)
            for a, b in zip(window, window[1:], strict=False)
        )
        passed = ratio <= max_ratio and monotone and not failed and math.isfinite(ratio)
        checks.append(
            {"norm": m, "ppl_ratio": round(ratio, 4), "monotone": monotone, "passed": passed}
        )
        if passed:
            best = m
        else:
            failed = True  # the range must be contiguous from 0
    if best == 0.0:
        first = checks[0]
        raise ValueError(
            f"No norm on the grid qualifies: at the smallest, {first['norm']:.3g}, the ppl ratio is "
            f"{first['ppl_ratio']:.3g} (limit {max_ratio:g}) and the effect is "
            f"{'monotone' if first['monotone'] else 'not monotone'}. Sweep smaller norms."
        )
    return best, checks


def calibrate_vector(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    *,
    prompts: Sequence[str],
    corpus: PoleCorpus,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_ratio: float = 1.5,
    tolerance: float | None = DEFAULT_TOLERANCE,
    max_new_tokens: int = 40,
    batch_size: int = 16,
    progress: bool = True,
    layer_path: str | None = None,
) -> CalibrationResult:
    """Sweep norms ``±fraction × residual norm`` and set the vector's functional range from the result.

    Args:
        model: the causal LM the vector was made for.
        tokenizer: its tokenizer.
        vector: the vector to calibrate (its current range is ignored).
        prompts: neutral requests to generate from.
        corpus: the pole corpora the effect is measured against.
        fractions: grid norms as fractions of the median residual norm, each in (0, 1].
        max_ratio: the perplexity ratio a norm may reach.
        tolerance: how far the mean effect may dip between neighbouring grid points and still count as
            monotone; ``None`` (default) uses the sampling noise (see the module doc).
        max_new_tokens: reply length.
        batch_size: rows per batched ``generate``.
        progress: show progress bars.
        layer_path: explicit path to the decoder blocks.

    Returns:
        A :class:`CalibrationResult`; save ``result.vector`` to write the range back.

    Raises:
        ValueError: a bad grid, or no grid norm qualifies.
    """
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions must be in (0, 1]; got {list(fractions)}.")
    norms = residual_norms(model, tokenizer, prompts, layer_path=layer_path)
    # Each layer's norm is a median over tokens; across the vector's layers take the upper median.
    scale = sorted(norms[layer] for layer in vector.layers)[len(vector.layers) // 2]
    magnitudes = [round(f * scale, 4) for f in fractions]
    grid = sorted({0.0, *magnitudes, *(-m for m in magnitudes)})
    sweep = run_sweep(
        model,
        tokenizer,
        vector,
        prompts=prompts,
        corpus=corpus,
        strengths=grid,
        scale="norm",
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    # Saved with the sweep, so that `calibrate_from_sweep` can re-decide from its JSON alone.
    sweep = dataclasses.replace(
        sweep, settings={**sweep.settings, "residual_norm": round(scale, 3)}
    )
    return calibrate_from_sweep(vector, sweep, max_ratio=max_ratio, tolerance=tolerance)


def calibrate_from_sweep(
    vector: SteeringVector,
    sweep: SweepResult,
    *,
    max_ratio: float = 1.5,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> CalibrationResult:
    """Set the vector's functional range from an existing sweep over norms, without generating anything.

    Use it to re-decide with another ``max_ratio`` or ``tolerance`` from a saved ``<dim>_sweep.json``
    (``SweepResult.from_dict(json.load(...))``) that :func:`calibrate_vector` wrote.

    Raises:
        ValueError: the sweep is not over norms, is for another dimension, or no grid norm qualifies.
    """
    if vector.name and sweep.dimension != vector.name:
        raise ValueError(
            f"The sweep is for {sweep.dimension!r}, not for the vector {vector.name!r}."
        )
    alpha, checks = choose_range(sweep, max_ratio=max_ratio, tolerance=tolerance)
    scale = sweep.settings.get("residual_norm")
    if scale is None:  # sweeps saved before the residual norm was recorded
        scale = dict(vector.extra.get("calibration") or {}).get("residual_norm", math.nan)
    details = {
        "method": "generation sweep",
        "max_ratio": max_ratio,
        "tolerance": tolerance,
        "residual_norm": scale,
        "prompts": len(sweep.settings.get("prompts", [])),
        "max_new_tokens": sweep.settings.get("max_new_tokens"),
        "checks": checks,
        "spearman": sweep.spearman if math.isfinite(sweep.spearman) else None,
    }
    calibrated = dataclasses.replace(
        vector,
        functional_range=round(alpha, 4),
        extra={**vector.extra, "calibration": details},
    )
    return CalibrationResult(calibrated, alpha, float(scale), checks, sweep)
