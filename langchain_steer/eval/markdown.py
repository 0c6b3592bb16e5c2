"""Render evaluation results as markdown: the text of every report :mod:`langchain_steer.eval.report` writes.

These functions are pure: they take a result object and return a string, so a report's text can be shown
or tested without writing files. :mod:`~langchain_steer.eval.report` writes them next to the JSON and plots.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from langchain_steer.eval.diagnostics import Diagnostics, median_relative_norm
from langchain_steer.eval.pole_eval import PoleEvaluation
from langchain_steer.eval.range_calibration import RangeCalibration
from langchain_steer.eval.sweep import SweepResult

__all__ = ["calibration_markdown", "diagnostics_markdown", "poles_markdown", "sweep_markdown"]


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:+.{digits}f}" if digits >= 3 else f"{value:.{digits}f}"


def _cell(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sweep_markdown(result: SweepResult, plots: Mapping[str, str] | None = None) -> str:
    """A markdown report of a sweep: the table, Spearman's ρ, example replies and the plots."""
    axis = "strength" if result.scale == "strength" else "norm"
    negative, positive = result.poles
    lines = [
        f"# Strength sweep: {result.dimension} ({negative} ↔ {positive})",
        "",
        f"Model `{result.model_id}`, layers {result.vector.get('layers')}, method "
        f"`{result.vector.get('method')}`, functional range {result.vector.get('functional_range'):g}. "
        f"{len(result.settings.get('prompts', []))} prompts, greedy replies of up to "
        f"{result.settings.get('max_new_tokens')} tokens, {result.settings.get('seconds')} s.",
        "",
        f"- **Spearman ρ** (effect against {axis}): {_fmt(result.spearman)} over the per-{axis} means, "
        f"{_fmt(result.spearman_samples)} over all {len(result.samples)} replies.",
        "- **Effect**: mean cosine similarity of a reply to the held-out "
        f"*{positive}* replies minus that to the *{negative}* replies (all-MiniLM-L6-v2).",
        "- **ppl**: perplexity of the reply under the unsteered model (geometric mean over replies); "
        f"**ratio** is against {axis} 0; **PNE** = (effect − effect₀) / ratio.",
        "- Brackets are 95 % bootstrap confidence intervals over replies.",
        "",
    ]
    reference = any(s.reference_ppl is not None for s in result.summaries)
    header = f"| {axis} | n | effect [95 % CI] | ppl [95 % CI] | ppl ratio | PNE |"
    rule = "|---:|---:|---|---|---:|---:|"
    if reference:
        header += " reference ppl ratio |"
        rule += "---:|"
    lines += [header, rule]
    for s in result.summaries:
        row = (
            f"| {s.strength:+g} | {s.n} | {_fmt(s.effect)} [{_fmt(s.effect_ci[0])}, {_fmt(s.effect_ci[1])}] "
            f"| {_fmt(s.ppl, 2)} [{_fmt(s.ppl_ci[0], 2)}, {_fmt(s.ppl_ci[1], 2)}] "
            f"| {_fmt(s.ppl_ratio, 2)} | {_fmt(s.pne)} |"
        )
        if reference:
            row += f" {_fmt(s.reference_ppl_ratio, 2)} |"
        lines.append(row + (f" ({s.empty} empty)" if s.empty else ""))
    if plots:
        lines += ["", *[f"![{name}]({path})" for name, path in plots.items()]]
    first = result.settings.get("prompts", [""])[0]
    examples = [g for g in result.samples if g.prompt == first]
    if examples:
        lines += ["", f"## Replies to “{_cell(first)}”", "", f"| {axis} | reply |", "|---:|---|"]
        for g in sorted(examples, key=lambda g: g.strengths.get(result.dimension, 0.0)):
            lines.append(f"| {g.strengths.get(result.dimension, 0.0):+g} | {_cell(g.text)} |")
    return "\n".join(lines) + "\n"


def diagnostics_markdown(diagnostics: Diagnostics, plots: Mapping[str, str] | None = None) -> str:
    """A markdown summary of :class:`~langchain_steer.eval.diagnostics.Diagnostics`."""
    lines = [
        "# Vector diagnostics",
        "",
        "| dimension | steered layers | probe accuracy there | best layer (accuracy) "
        "| range / residual norm |",
        "|---|---|---|---|---:|",
    ]
    for name, layers in diagnostics.steered_layers.items():
        accuracy = diagnostics.probe_accuracy[name]
        there = ", ".join(f"{accuracy[i]:.2f}" for i in layers if i < len(accuracy))
        best = max(range(len(accuracy)), key=lambda i: accuracy[i])
        lines.append(
            f"| {name} | {layers} | {there} | {best} ({accuracy[best]:.2f}) "
            f"| {median_relative_norm(diagnostics, name):.3f} |"
        )
    names = diagnostics.names
    lines += [
        "",
        "Mean cosine similarity between directions over shared layers (– : no shared layer):",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for name, row in zip(names, diagnostics.cosine, strict=True):
        lines.append(
            f"| {name} | " + " | ".join("–" if v is None else f"{v:+.2f}" for v in row) + " |"
        )
    overlap = diagnostics.largest_overlap()
    if overlap:
        lines += [
            "",
            f"Most entangled pair: {overlap[0]} and {overlap[1]}, cosine {overlap[2]:+.2f}.",
        ]
    if plots:
        lines += ["", *[f"![{name}]({path})" for name, path in plots.items()]]
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.0%}"


def poles_markdown(evaluation: PoleEvaluation, examples: int = 2) -> str:
    """A markdown report of an evaluation: pole shares, fluency, cross-effects and example replies."""
    settings = evaluation.settings
    levels = [s for s in evaluation.strengths if s != 0]
    low, high = min(levels), max(levels)
    reference = settings.get("reference_model")
    lines = [
        "# Pole shares, fluency and cross-effects",
        "",
        f"Model `{settings.get('model_id')}`, {len(settings.get('prompts', []))} everyday requests, greedy "
        f"replies of up to {settings.get('max_new_tokens')} tokens, repetition penalty "
        f"{settings.get('repetition_penalty')}, system prompt "
        f"{'“' + _cell(settings['system'], 90) + '”' if settings.get('system') else 'none'}. "
        f"{settings.get('seconds')} s.",
        "",
        "## Share of replies that read as each pole",
        "",
        "Each cell is negative / neither / positive, as the dimension's pole judge reads the replies. "
        f"**Rise** is the positive share at {high:+g} minus at {low:+g}. **Embedding agrees**: of the "
        "replies read as a pole at each strength, the share whose MiniLM embedding is also nearer that "
        "pole's descriptions and replies (the judge's independent cross-check).",
        "",
        "| dimension | "
        + " | ".join(f"{s:+g}" for s in evaluation.strengths)
        + " | rise | embedding agrees |",
        "|---|" + "---|" * len(evaluation.strengths) + "---:|---|",
    ]
    for name in evaluation.dimensions:
        cells = []
        for s in evaluation.strengths:
            sh = evaluation.shares(name, s)
            cells.append(f"{_pct(sh['negative'])} / {_pct(sh['neither'])} / {_pct(sh['positive'])}")
        rise = evaluation.shares(name, high)["positive"] - evaluation.shares(name, low)["positive"]
        agrees = " / ".join(
            _pct(evaluation.embedding_agreement(name, s)) for s in evaluation.strengths
        )
        lines.append(
            f"| `{name}` | " + " | ".join(cells) + f" | {rise * 100:+.0f} pts | {agrees} |"
        )
    lines += [
        "",
        "## Fluency",
        "",
        "**ppl**: perplexity of the replies, given the plain request, under the unsteered model "
        "(geometric mean over replies). **ratio**: against the prompted-pole baseline of the pole steered "
        "towards (replies that ask for it, on-pole ones only; at 0, the mean of both poles). "
        "**degenerate**: loops, invented words, another script, or empty.",
        "",
        "| dimension | strength | ppl | ratio | "
        + ("reference ratio | " if reference else "")
        + "degenerate |",
        "|---|---:|---:|---:|" + ("---:|" if reference else "") + "---:|",
    ]
    for name in evaluation.dimensions:
        for s in evaluation.strengths:
            row = (
                f"| `{name}` | {s:+g} | {_fmt(evaluation.ppl(name, s), 2)} "
                f"| {_fmt(evaluation.ppl_ratio(name, s), 2)} |"
            )
            if reference:
                row += f" {_fmt(evaluation.ppl_ratio(name, s, reference=True), 2)} |"
            lines.append(row + f" {_pct(evaluation.degenerate(name, s))} |")
    if evaluation.baselines:
        lines += [
            "",
            "Prompted-pole baselines (share of prompted replies the judge reads as the asked-for pole; "
            "their perplexity):",
            "",
            "| dimension | pole | instruction | on pole | ppl |",
            "|---|---|---|---:|---:|",
        ]
        for (name, side), base in evaluation.baselines.items():
            lines.append(
                f"| `{name}` | {side} | {_cell(base.instruction, 80)} | {_pct(base.compliance)} "
                f"| {_fmt(base.ppl, 2)} |"
            )
    judged, matrix = evaluation.cross_effects(high)
    lines += [
        "",
        f"## Cross-effects (steer the row from {-high:+g} to {high:+g}, read the column)",
        "",
        "Net pole share (positive minus negative) at the top strength minus at its negative. The diagonal is "
        "each dimension's own effect; **!** marks a cross-effect above a third of it.",
        "",
        "| steered \\ judged | " + " | ".join(f"`{j}`" for j in judged) + " |",
        "|---|" + "---:|" * len(judged),
    ]
    for name, effects in zip(evaluation.dimensions, matrix, strict=True):
        own = effects[judged.index(name)] if name in judged else math.nan
        marked = []
        for j, value in zip(judged, effects, strict=True):
            flag = "!" if j != name and abs(value) > abs(own) / 3 else ""
            marked.append(f"**{value:+.2f}**" if j == name else f"{value:+.2f}{flag}")
        lines.append(f"| `{name}` | " + " | ".join(marked) + " |")
    prompts = settings.get("prompts", [])[:examples]
    for prompt in prompts:
        lines += [
            "",
            f"## Replies to “{_cell(prompt)}”",
            "",
            "| dimension | strength | reply |",
            "|---|---:|---|",
        ]
        for name in evaluation.dimensions:
            for s in evaluation.strengths:
                match = [r for r in evaluation.at(name, s) if r.request == prompt]
                if match:
                    lines.append(f"| `{name}` | {s:+g} | {_cell(match[0].text, 300)} |")
    return "\n".join(lines) + "\n"


def calibration_markdown(outcome: RangeCalibration) -> str:
    """A markdown report of one range calibration: every grid check and what stopped each side."""
    vector = outcome.vector
    details = vector.extra.get("calibration", {})
    lines = [
        f"# Range calibration: {vector.name} ({vector.poles[0]} ↔ {vector.poles[1]})",
        "",
        f"Residual norm at the median steered layer: {outcome.residual_norm:.1f}. Limits: perplexity ratio "
        f"{details.get('max_ratio')} to the prompted-pole baseline, degenerate share "
        f"{details.get('max_degenerate')}, pole-share dip {details.get('tolerance')}. "
        f"{details.get('prompts')} development requests.",
        "",
        f"- **-1** ({vector.poles[0]}): norm {outcome.negative_range:g}; stopped by "
        f"{outcome.stopped_by['negative']}.",
        f"- **+1** ({vector.poles[1]}): norm {outcome.functional_range:g}; stopped by "
        f"{outcome.stopped_by['positive']}.",
    ]
    for side in ("negative", "positive"):
        lines += [
            "",
            f"## {side} side",
            "",
            "| fraction | norm | pole share | degenerate | ppl ratio | failed |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for c in outcome.checks[side]:
            lines.append(
                f"| {c['fraction']:g} | {c['norm']:g} | {_pct(c['pole_share'])} | {_pct(c['degenerate'])} "
                f"| {c['ppl_ratio']:.2f} | {'; '.join(c['failed']) or '–'} |"
            )
    return "\n".join(lines) + "\n"
