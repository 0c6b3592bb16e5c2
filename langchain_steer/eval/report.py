"""Write evaluation results out: JSON, a markdown report, and PNG plots with confidence bands.

The markdown text comes from :mod:`langchain_steer.eval.markdown` (re-exported here, as before).

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

from langchain_steer.eval.diagnostics import Diagnostics
from langchain_steer.eval.markdown import (
    calibration_markdown,
    diagnostics_markdown,
    poles_markdown,
    sweep_markdown,
)
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
