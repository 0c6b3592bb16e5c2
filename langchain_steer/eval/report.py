"""Write evaluation results out: JSON, a markdown report, and PNG plots with confidence bands.

Plots use matplotlib's object API (``matplotlib.figure.Figure``) with no pyplot state, so reports can be
written from any thread and on machines without a display. matplotlib is an optional dependency:
``pip install "langchain-steer[eval]"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_steer.eval.diagnostics import Diagnostics, median_relative_norm
from langchain_steer.eval.pole_eval import PoleEvaluation
from langchain_steer.eval.range_calibration import RangeCalibration
from langchain_steer.eval.sweep import SweepResult

__all__ = [
    "calibration_markdown",
    "plot_heatmap",
    "poles_markdown",
    "write_calibration_report",
    "write_pole_report",
    "plot_lines",
    "diagnostics_markdown",
    "require_matplotlib",
    "sweep_markdown",
    "write_diagnostics",
    "write_json",
    "write_report",
]


def require_matplotlib() -> None:
    """Fail early, before a long sweep, when the plots could not be drawn.

    Raises:
        ImportError: matplotlib is missing (the message says how to install it).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise ImportError(
            'Plots need matplotlib: `pip install "langchain-steer[eval]"` (or pass --no-plots).'
        ) from error


def write_json(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, through a temporary file so a crash leaves no half file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", "utf-8")
    tmp.replace(target)
    return target


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


def _save_png(figure: Any, path: str | Path) -> Path:
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target


def plot_lines(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    hline: float | None = None,
) -> Path:
    """Plot one or more ``label → (mean, low, high)`` series against ``x`` with shaded bands; save a PNG."""
    require_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=110)
    axes = figure.add_subplot()
    for label, (mean, low, high) in series.items():
        axes.plot(x, mean, marker="o", label=label)
        axes.fill_between(x, low, high, alpha=0.25)
    if hline is not None:
        axes.axhline(hline, color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend()
    return _save_png(figure, path)


def plot_heatmap(
    path: str | Path,
    matrix: Sequence[Sequence[float | None]],
    labels: Sequence[str],
    *,
    title: str,
) -> Path:
    """A labelled square heatmap with the values written in each cell (``None`` cells are blank)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    values = [[math.nan if v is None else float(v) for v in row] for row in matrix]
    figure = Figure(figsize=(5, 4.2), dpi=110)
    axes = figure.add_subplot()
    image = axes.imshow(values, vmin=-1, vmax=1, cmap="coolwarm")
    axes.set_xticks(range(len(labels)), labels, rotation=30)
    axes.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if math.isfinite(value):
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    axes.set_title(title)
    figure.colorbar(image, ax=axes)
    return _save_png(figure, path)


def write_report(
    result: SweepResult, out_dir: str | Path, *, plots: bool = True
) -> dict[str, Path]:
    """Write a sweep's JSON, markdown report and plots into ``out_dir``.

    The files are ``<dim>_sweep.json``, ``<dim>_report.md`` and, with ``plots``, ``<dim>_effect.png`` and
    ``<dim>_ppl.png``; the markdown links the plots.

    Returns:
        Kind (``"json"``, ``"markdown"``, ``"effect"``, ``"ppl"``) → the path written.

    Raises:
        ImportError: ``plots`` is on and matplotlib is missing.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = result.dimension or "vector"
    written = {"json": write_json(result.to_dict(), folder / f"{stem}_sweep.json")}
    axis = "strength" if result.scale == "strength" else "norm added to the residual stream"
    x = result.strengths
    if plots:
        s = result.summaries
        written["effect"] = plot_lines(
            folder / f"{stem}_effect.png",
            x,
            {
                "effect": (
                    [v.effect for v in s],
                    [v.effect_ci[0] for v in s],
                    [v.effect_ci[1] for v in s],
                )
            },
            xlabel=axis,
            ylabel=f"effect (→ {result.poles[1]})",
            title=f"{stem}: effect, Spearman ρ = {result.spearman:.2f}",
            hline=s[x.index(0.0)].effect if 0.0 in x else None,
        )
        bands: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]] = {
            "unsteered model": (
                [v.ppl for v in s],
                [v.ppl_ci[0] for v in s],
                [v.ppl_ci[1] for v in s],
            )
        }
        if all(v.reference_ppl is not None for v in s):
            bands["reference model"] = (
                [float(v.reference_ppl or math.nan) for v in s],
                [(v.reference_ppl_ci or (math.nan, math.nan))[0] for v in s],
                [(v.reference_ppl_ci or (math.nan, math.nan))[1] for v in s],
            )
        written["ppl"] = plot_lines(
            folder / f"{stem}_ppl.png",
            x,
            bands,
            xlabel=axis,
            ylabel="perplexity of the reply",
            title=f"{stem}: fluency",
        )
    links = {k: p.name for k, p in written.items() if p.suffix == ".png"}
    markdown = folder / f"{stem}_report.md"
    markdown.write_text(sweep_markdown(result, links), "utf-8")
    written["markdown"] = markdown
    return written


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


def write_diagnostics(
    diagnostics: Diagnostics, out_dir: str | Path, *, plots: bool = True
) -> dict[str, Path]:
    """Write diagnostics into ``out_dir``.

    The files are ``diagnostics.json``, ``diagnostics.md`` and, with ``plots``, ``probe_accuracy.png`` and
    ``cosine.png``.

    Raises:
        ImportError: ``plots`` is on and matplotlib is missing.
    """
    folder = Path(out_dir)
    written = {"json": write_json(diagnostics.to_dict(), folder / "diagnostics.json")}
    if plots:
        curves = {
            name: (values, values, values) for name, values in diagnostics.probe_accuracy.items()
        }
        depth = max(len(v) for v in diagnostics.probe_accuracy.values())
        written["probe_accuracy"] = plot_lines(
            folder / "probe_accuracy.png",
            list(range(depth)),
            curves,
            xlabel="layer",
            ylabel="cross-validated probe accuracy",
            title="Pole separability per layer",
            hline=0.5,
        )
        written["cosine"] = plot_heatmap(
            folder / "cosine.png",
            diagnostics.cosine,
            diagnostics.names,
            title="Cosine similarity between dimensions",
        )
    links = {k: p.name for k, p in written.items() if p.suffix == ".png"}
    markdown = folder / "diagnostics.md"
    markdown.write_text(diagnostics_markdown(diagnostics, links), "utf-8")
    written["markdown"] = markdown
    return written


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


def write_pole_report(evaluation: PoleEvaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``poles.json`` (every reply, judged) and ``poles.md`` into ``out_dir``.

    Returns:
        ``{"json": path, "markdown": path}``.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"json": write_json(evaluation.to_dict(), folder / "poles.json")}
    markdown = folder / "poles.md"
    markdown.write_text(poles_markdown(evaluation), "utf-8")
    written["markdown"] = markdown
    return written


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


def write_calibration_report(outcome: RangeCalibration, out_dir: str | Path) -> dict[str, Path]:
    """Write ``<dim>_calibration.json`` (checks, details and replies) and ``<dim>_calibration.md``.

    ``langchain-steer eval calibrate --from-report`` re-decides ranges from the JSON.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = outcome.vector.name or "vector"
    data = {
        "schema": "langchain-steer/calibration@1",
        "dimension": outcome.vector.name,
        "details": {
            k: v for k, v in outcome.vector.extra.get("calibration", {}).items() if k != "checks"
        },
        "checks": outcome.checks,
        "replies": {
            side: {str(f): r for f, r in by.items()} for side, by in outcome.replies.items()
        },
    }
    written = {"json": write_json(data, folder / f"{stem}_calibration.json")}
    markdown = folder / f"{stem}_calibration.md"
    markdown.write_text(calibration_markdown(outcome), "utf-8")
    written["markdown"] = markdown
    return written
