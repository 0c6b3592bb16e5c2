"""Shared helpers for the benchmarks: timing statistics, machine description, tables and JSON output.

Every benchmark measures the things it compares side by side in one process, alternating their order on
each repetition, after warm-up runs, and reports the median with the spread (min and max). Ratios are taken
per repetition (A and B measured back to back) and then summarised, which cancels most of the slow drift of
a shared machine.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and count of ``values``."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``function`` once; return (seconds, its result)."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def side_by_side(
    runs: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, alternating the order every round; return seconds per name."""
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            elapsed, _ = timed(runs[name])
            seconds[name].append(elapsed)
    return seconds


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any], path: str | None = None) -> Path:
    """Write ``payload`` (plus the machine description) to ``path`` or ``benchmarks/results/<name>.json``."""
    target = Path(path) if path else RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"benchmark": name, "machine": machine(), **payload}, indent=2))
    return target


def spread(values: dict[str, float], digits: int = 3) -> str:
    """``median (min–max)`` for a :func:`summary`."""
    return f"{values['median']:.{digits}f} ({values['min']:.{digits}f}–{values['max']:.{digits}f})"
