"""Evaluating steering with the paper's metrics: effect, fluency, PNE, and their statistics.

* :mod:`~langchain_steer.eval.metrics`: pure metric functions (no model needed).
* :mod:`~langchain_steer.eval.sweep`: generate steered replies over a grid of strengths and score them.
* :mod:`~langchain_steer.eval.calibration`: set a vector's functional range from a sweep over norms.
* :mod:`~langchain_steer.eval.diagnostics`: probe accuracy per layer, cosines between dimensions, norms.
* :mod:`~langchain_steer.eval.report`: JSON, markdown and PNG plots (plots need ``langchain-steer[eval]``).

The command line wraps them: ``langchain-steer eval sweep | calibrate | diagnose``. See ``docs/eval.md``.
"""

from langchain_steer.eval.calibration import CalibrationResult, calibrate_vector, choose_range
from langchain_steer.eval.diagnostics import Diagnostics, cosine_matrix, diagnose, residual_norms
from langchain_steer.eval.metrics import (
    bootstrap_ci,
    perplexity,
    pne,
    ranks,
    relative_similarity,
    spearman,
)
from langchain_steer.eval.report import write_diagnostics, write_report
from langchain_steer.eval.sweep import (
    DEFAULT_STRENGTHS,
    Generation,
    PoleCorpus,
    StrengthSummary,
    SweepResult,
    generate_and_score,
    run_sweep,
    summarise,
)

__all__ = [
    "DEFAULT_STRENGTHS",
    "CalibrationResult",
    "Diagnostics",
    "Generation",
    "PoleCorpus",
    "StrengthSummary",
    "SweepResult",
    "bootstrap_ci",
    "calibrate_vector",
    "choose_range",
    "cosine_matrix",
    "diagnose",
    "generate_and_score",
    "perplexity",
    "pne",
    "ranks",
    "relative_similarity",
    "residual_norms",
    "run_sweep",
    "spearman",
    "summarise",
    "write_diagnostics",
    "write_report",
]
