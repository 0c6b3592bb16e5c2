"""Evaluating steering: does each dimension move replies to its poles, fluently, and only its own poles?

* :mod:`~langchain_steer.eval.judge`: the pole judge (negative, positive or neither, per reply).
* :mod:`~langchain_steer.eval.pole_eval`: steered replies to everyday requests, judged by every dimension,
  with fluency against the prompted-pole baseline and the cross-effect matrix.
* :mod:`~langchain_steer.eval.range_calibration`: set a vector's ranges from generated text.
* :mod:`~langchain_steer.eval.fluency`: perplexity under a scoring model; the vocabulary of the non-word
  check.
* :mod:`~langchain_steer.eval.metrics`: pure metric functions (no model needed), degeneration included.
* :mod:`~langchain_steer.eval.sweep`: the paper's embedding effect and PNE over a grid of strengths.
* :mod:`~langchain_steer.eval.diagnostics`: probe accuracy per layer, cosines between dimensions, norms.
* :mod:`~langchain_steer.eval.report`: JSON, markdown and PNG plots (plots need ``langchain-steer[eval]``).

The command line wraps them: ``langchain-steer eval poles | calibrate | sweep | diagnose``. See
``docs/eval.md``.
"""

from langchain_steer.eval.diagnostics import Diagnostics, cosine_matrix, diagnose, residual_norms
from langchain_steer.eval.judge import LABELS, Label, PoleJudge, judge_accuracy
from langchain_steer.eval.metrics import (
    bootstrap_ci,
    degeneration,
    distinct_n,
    nonword_rate,
    perplexity,
    pne,
    ranks,
    relative_similarity,
    repeated_ngram_rate,
    spearman,
)
from langchain_steer.eval.pole_eval import (
    Baseline,
    PoleEvaluation,
    Reply,
    evaluate_poles,
    prompted_baseline,
)
from langchain_steer.eval.range_calibration import (
    DEFAULT_FRACTIONS,
    RangeCalibration,
    calibrate_range,
    choose_norm,
)
from langchain_steer.eval.report import (
    write_calibration_report,
    write_diagnostics,
    write_pole_report,
    write_report,
)
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
    "DEFAULT_FRACTIONS",
    "DEFAULT_STRENGTHS",
    "LABELS",
    "Baseline",
    "Diagnostics",
    "Generation",
    "Label",
    "PoleCorpus",
    "PoleEvaluation",
    "PoleJudge",
    "RangeCalibration",
    "Reply",
    "StrengthSummary",
    "SweepResult",
    "bootstrap_ci",
    "calibrate_range",
    "choose_norm",
    "cosine_matrix",
    "degeneration",
    "diagnose",
    "distinct_n",
    "evaluate_poles",
    "generate_and_score",
    "judge_accuracy",
    "nonword_rate",
    "perplexity",
    "pne",
    "prompted_baseline",
    "ranks",
    "relative_similarity",
    "repeated_ngram_rate",
    "residual_norms",
    "run_sweep",
    "spearman",
    "summarise",
    "write_calibration_report",
    "write_diagnostics",
    "write_pole_report",
    "write_report",
]
