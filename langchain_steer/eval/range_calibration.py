"""Range calibration: set how far strength ±1 steers, from the text the steered model writes.

A vector's ranges (``functional_range`` for +1, ``negative_range`` for -1) are the strongest settings whose
replies still read well. :func:`calibrate_range` is the one method that sets them; ``langchain-steer extract
--calibrate``, ``langchain-steer eval calibrate`` and the shipped vectors all use it.

For each side it generates greedy replies to everyday requests at a grid of norms ``f × r``, where ``f``
runs over :data:`DEFAULT_FRACTIONS` and ``r`` is the residual-stream norm at the vector's median steered
layer (so one grid suits models whose activations differ in scale by orders of magnitude), and keeps **the
largest norm such that at every grid norm up to it**:

1. **fluency**: the replies' perplexity under the unsteered model is at most ``max_ratio`` (1.3) times the
   prompted-pole baseline's (:mod:`langchain_steer.eval.pole_eval`: replies that ask for the same pole, so
   the pole's own words are not charged to the steering), and, when a reference model is given, the same
   holds under it with ``max_reference_ratio``;
2. **no degeneration**: at most ``max_degenerate`` (5 %) of the replies loop, invent words, switch script or
   come out empty (:func:`langchain_steer.eval.metrics.degeneration`);
3. **monotone effect**: the share of replies the pole judge reads as the steered-to pole does not fall by
   more than ``tolerance`` (0.1) from one grid norm to the next.

The range must be contiguous from 0: a norm that passes beyond a failing one is not taken. Which criterion
stopped each side is recorded in ``extra["calibration"]``. Calibrate on requests you will not measure on:
for the built-in dimensions, the ``dev`` split of :func:`langchain_steer.dimensions.everyday_requests`.

**Leave headroom.** A limit reached on 30 prompts moved by up to 0.3 on 40 others (docs/eval.md); the
shipped vectors are calibrated with ``max_ratio=1.3`` so that they stay within 1.5 on held-out requests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_steer.eval.judge import PoleJudge
from langchain_steer.eval.pole_eval import (
    Baseline,
    generate_replies,
    geometric_ppl,
    prompted_baseline,
    score_replies,
)
from langchain_steer.eval.settings import ReplySettings
from langchain_steer.vectors import SteeringVector

__all__ = [
    "DEFAULT_FRACTIONS",
    "RangeCalibration",
    "calibrate_range",
    "choose_norm",
    "median_residual_norm",
    "redecide_range",
]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05)
"""Candidate norms, as fractions of the residual norm at the vector's median steered layer."""

SIDES = ("negative", "positive")


@dataclasses.dataclass(frozen=True)
class RangeCalibration:
    """What :func:`calibrate_range` decided, and why.

    Attributes:
        vector: the input vector with its new ranges and ``extra["calibration"]``.
        functional_range: the norm chosen for strength +1.
        negative_range: the norm chosen for strength -1.
        residual_norm: the norm the grid was scaled by.
        checks: side → one record per grid norm: ``fraction``, ``norm``, ``pole_share``, ``degenerate``,
            ``ppl_ratio``, ``reference_ppl_ratio``, ``failed`` (the reasons it failed; empty if it passed).
        stopped_by: side → what ended the range (the first failing grid norm's reasons, or "end of grid").
        replies: side → fraction → the replies at that grid norm.
    """

    vector: SteeringVector
    functional_range: float
    negative_range: float
    residual_norm: float
    checks: dict[str, list[dict[str, Any]]]
    stopped_by: dict[str, str]
    replies: dict[str, dict[float, list[str]]]


def median_residual_norm(vector: SteeringVector) -> float | None:
    """The residual norm extraction recorded at the vector's median steered layer (None if not recorded)."""
    recorded = dict(vector.extra.get("residual_norm") or {})
    values = [float(recorded[str(layer)]) for layer in vector.layers if str(layer) in recorded]
    return sorted(values)[len(values) // 2] if values else None


def choose_norm(
    checks: Sequence[Mapping[str, Any]],
    *,
    max_ratio: float = 1.3,
    max_degenerate: float = 0.05,
    tolerance: float = 0.1,
    max_reference_ratio: float | None = None,
) -> tuple[float, list[list[str]], str]:
    """Pick one side's norm from its grid checks (in increasing norm), as described in the module doc.

    Returns:
        ``(norm, reasons per check, what stopped the range)``; ``norm`` is 0 when even the smallest fails.
    """
    best, failed, stopped = 0.0, [], "end of grid"
    previous_share = -math.inf
    blocked = False
    for check in checks:
        reasons = []
        ratio = check["ppl_ratio"]
        if not (math.isfinite(ratio) and ratio <= max_ratio):
            reasons.append(f"ppl ratio {ratio:.2f} > {max_ratio:g}")
        ref = check.get("reference_ppl_ratio")
        if max_reference_ratio is not None and not (
            ref is not None and math.isfinite(ref) and ref <= max_reference_ratio
        ):
            reasons.append(f"reference ppl ratio {ref} > {max_reference_ratio:g}")
        if check["degenerate"] > max_degenerate:
            reasons.append(f"degenerate {check['degenerate']:.0%} > {max_degenerate:.0%}")
        if check["pole_share"] < previous_share - tolerance:
            reasons.append(
                f"pole share fell from {previous_share:.0%} to {check['pole_share']:.0%}"
            )
        previous_share = max(previous_share, check["pole_share"])
        failed.append(reasons)
        if reasons and not blocked:
            blocked = True
            stopped = f"{check['fraction']:g} of the residual norm: " + "; ".join(reasons)
        if not reasons and not blocked:
            best = float(check["norm"])
    return best, failed, stopped


def redecide_range(
    vector: SteeringVector,
    saved: Mapping[str, Any],
    *,
    max_ratio: float = 1.3,
    max_degenerate: float = 0.05,
    tolerance: float = 0.1,
) -> SteeringVector:
    """Set ``vector``'s ranges again from the grid checks a calibration report saved, without generating.

    ``saved`` is a ``<dimension>_calibration.json`` that
    :func:`~langchain_steer.eval.report.write_calibration_report` wrote. Each side's norm is chosen
    anew with :func:`choose_norm` under the given limits; the new calibration details record them, with
    ``"re_decided": True``.

    Raises:
        ValueError: ``saved`` is not such a report, or no saved grid norm qualifies on a side.
    """
    ranges = {}
    try:
        for side in SIDES:
            norm, _, stopped = choose_norm(
                saved["checks"][side],
                max_ratio=max_ratio,
                max_degenerate=max_degenerate,
                tolerance=tolerance,
            )
            if norm == 0:
                raise ValueError(f"no saved grid norm qualifies on the {side} side ({stopped})")
            ranges[side] = norm
        details = {**saved["details"], "max_ratio": max_ratio, "re_decided": True}
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a saved calibration report (missing or malformed: {error})") from error
    return dataclasses.replace(
        vector,
        functional_range=ranges["positive"],
        negative_range=ranges["negative"],
        extra={**vector.extra, "calibration": details},
    )


def calibrate_range(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    *,
    prompts: Sequence[str],
    judge: PoleJudge,
    instructions: Mapping[str, str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    residual_norm: float | None = None,
    max_ratio: float = 1.3,
    max_degenerate: float = 0.05,
    tolerance: float = 0.1,
    max_reference_ratio: float | None = None,
    baseline: Mapping[str, Baseline] | None = None,
    settings: ReplySettings | None = None,
) -> RangeCalibration:
    """Set ``vector``'s ranges from replies generated at a grid of norms on each side.

    Args:
        model: the causal LM the vector was made for.
        tokenizer: its tokenizer.
        vector: the vector to calibrate; its current ranges are ignored. A symmetric vector becomes
            two-sided in range only when its sides calibrate differently.
        prompts: everyday requests to generate from (not the ones you will measure on).
        judge: the dimension's pole judge.
        instructions: ``{"negative": sentence, "positive": sentence}`` for the prompted-pole baseline.
        fractions: grid norms as fractions of ``residual_norm``, each in (0, 0.5].
        residual_norm: the norm the grid is scaled by (default: the one extraction recorded at the median
            steered layer).
        max_ratio: the largest perplexity ratio to the prompted baseline a range may reach.
        max_degenerate: the largest share of degenerate replies.
        tolerance: how far the pole share may fall between neighbouring grid norms.
        max_reference_ratio: the perplexity-ratio limit under the settings' reference model (required
            with one, and only with one).
        baseline: a precomputed ``{"negative": Baseline, "positive": Baseline}`` (else it is generated).
        settings: how replies are generated and scored (default :class:`ReplySettings`); give the system
            prompt the vector will be used under.

    Raises:
        ValueError: a bad grid, no residual norm, or a side where not even the smallest norm qualifies
            (the message gives the numbers; try smaller fractions).
    """
    if not prompts:
        raise ValueError("calibrate_range needs at least one prompt.")
    grid = sorted({float(f) for f in fractions})
    if not grid or not all(0 < f <= 0.5 for f in grid):
        raise ValueError(f"fractions must be in (0, 0.5]; got {list(fractions)}.")
    settings = settings or ReplySettings()
    reference = settings.reference
    if (reference is None) != (max_reference_ratio is None):
        raise ValueError("Give reference and max_reference_ratio together.")
    scale = residual_norm if residual_norm is not None else median_residual_norm(vector)
    if scale is None or not math.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"{vector.name or 'The vector'} records no residual norm; pass residual_norm= (the median "
            "norm of the model's hidden states at the steered layers, e.g. from "
            "langchain_steer.eval.diagnostics.residual_norms)."
        )
    name = vector.name or "vector"
    top = grid[-1] * scale
    # The grid's largest norm is strength ±1; every grid norm is a fraction of it on either side.
    steered = dataclasses.replace(vector, functional_range=top, negative_range=top)
    sign = {"negative": -1.0, "positive": 1.0}
    rows = [(p, {name: sign[side] * f / grid[-1]}) for side in SIDES for f in grid for p in prompts]
    texts = generate_replies(
        model,
        tokenizer,
        {name: steered},
        rows,
        settings=settings,
        desc=f"calibrate {name}",
    )
    scored = score_replies(
        model,
        tokenizer,
        [(p, p, s, t) for (p, s), t in zip(rows, texts, strict=True)],
        {name: judge},
        settings=settings,
    )
    if baseline is None:
        made = prompted_baseline(
            model, tokenizer, {name: judge}, {name: instructions}, prompts, settings=settings
        )
        baseline = {side: made[(name, side)] for side in SIDES}
    checks: dict[str, list[dict[str, Any]]] = {}
    replies: dict[str, dict[float, list[str]]] = {}
    chosen: dict[str, float] = {}
    stopped: dict[str, str] = {}
    n = len(prompts)
    for s, side in enumerate(SIDES):
        records: list[dict[str, Any]] = []
        replies[side] = {}
        for g, fraction in enumerate(grid):
            chunk = scored[(s * len(grid) + g) * n : (s * len(grid) + g + 1) * n]
            replies[side][fraction] = [r.text for r in chunk]
            ppl = geometric_ppl([r.nll for r in chunk])
            ref_ppl = (
                geometric_ppl([r.reference_nll for r in chunk]) if reference is not None else None
            )
            records.append(
                {
                    "fraction": fraction,
                    "norm": round(fraction * scale, 4),
                    "pole_share": sum(r.labels[name] == side for r in chunk) / n,
                    "degenerate": sum(bool(r.degeneration) for r in chunk) / n,
                    "ppl": round(ppl, 4),
                    "ppl_ratio": round(ppl / baseline[side].ppl, 4),
                    "reference_ppl_ratio": (
                        round(ref_ppl / baseline[side].reference_ppl, 4)
                        if ref_ppl is not None
                        else None
                    ),
                }
            )
        norm, failed, stopped[side] = choose_norm(
            records,
            max_ratio=max_ratio,
            max_degenerate=max_degenerate,
            tolerance=tolerance,
            max_reference_ratio=max_reference_ratio,
        )
        for record, reasons in zip(records, failed, strict=True):
            record["failed"] = reasons
        checks[side] = records
        if norm == 0:
            first = records[0]
            raise ValueError(
                f"{name} ({side} side): no grid norm qualifies; at the smallest, {first['norm']:.3g} "
                f"({first['fraction']:g} of the residual norm), {stopped[side]}. Try smaller fractions."
            )
        chosen[side] = norm
    details = {
        "method": "generation sweep against the prompted-pole baseline",
        "max_ratio": max_ratio,
        "max_degenerate": max_degenerate,
        "tolerance": tolerance,
        "max_reference_ratio": max_reference_ratio,
        "residual_norm": round(scale, 3),
        "prompts": len(prompts),
        "max_new_tokens": settings.max_new_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "system_prompt": settings.system,
        "baseline": {
            side: {
                "ppl": round(baseline[side].ppl, 4),
                "compliance": round(baseline[side].compliance, 4),
            }
            for side in SIDES
        },
        "checks": checks,
        "stopped_by": stopped,
    }
    calibrated = dataclasses.replace(
        vector,
        functional_range=chosen["positive"],
        negative_range=(
            None
            if vector.symmetric and math.isclose(chosen["negative"], chosen["positive"])
            else chosen["negative"]
        ),
        extra={**vector.extra, "calibration": details},
    )
    return RangeCalibration(
        vector=calibrated,
        functional_range=chosen["positive"],
        negative_range=chosen["negative"],
        residual_norm=scale,
        checks=checks,
        stopped_by=stopped,
        replies=replies,
    )
