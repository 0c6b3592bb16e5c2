"""What the command groups share: the default options, ``--steer`` parsing, vector loading, messages."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from langchain_steer.dimensions import (
    PLANNER_SYSTEM_PROMPT,
    Dimension,
    builtin_vectors,
    read_examples,
)
from langchain_steer.packs import load_vectors
from langchain_steer.vectors import SteeringVector

if TYPE_CHECKING:  # the recipe pulls in the evaluation modules: imported when a command needs it
    from langchain_steer.recipe import DimensionSpec

# The shipped vectors are extracted and calibrated under the planner system prompt; "" turns it off.
DEFAULT_SYSTEM: str = PLANNER_SYSTEM_PROMPT
# A mild penalty: greedy replies of the 135M demo model otherwise loop on about one request in ten.
DEMO_REPETITION_PENALTY = 1.1


def parse_steer(items: Sequence[str]) -> dict[str, float]:
    """``["cost=0.8", ...]`` as ``{"cost": 0.8, ...}``; a usage error says the format."""
    strengths: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--steer takes NAME=STRENGTH, e.g. cost=0.8; got {item!r}")
        try:
            strengths[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--steer {item!r}: {value!r} is not a number") from None
    return strengths


def vectors_or_exit(spec: str | None, model: str) -> dict[str, SteeringVector]:
    """The ``--vectors`` file or folder, or the model's built-in vectors; a bad one exits with the error."""
    try:
        # Built-in vectors ship for "demo" only; any other model needs --vectors.
        return builtin_vectors(model) if spec is None else load_vectors(spec)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


def messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """One user turn, after the system prompt when there is one."""
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]


def system(args: argparse.Namespace) -> str | None:
    """The ``--system`` prompt; ``''`` means none."""
    return args.system or None


def model_options(p: argparse.ArgumentParser) -> None:
    """``--model`` and ``--device``."""
    p.add_argument("--model", default="demo", help="'demo', a hub id, a folder or a .gguf file")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")


def system_option(p: argparse.ArgumentParser) -> None:
    """``--system``."""
    p.add_argument(
        "--system",
        default=DEFAULT_SYSTEM,
        help="system prompt (default: the lifestyle-planning prompt the shipped vectors use; "
        "'' for none)",
    )


def penalty_option(p: argparse.ArgumentParser) -> None:
    """``--repetition-penalty``."""
    p.add_argument(
        "--repetition-penalty",
        type=float,
        default=DEMO_REPETITION_PENALTY,
        help="HF repetition penalty of the greedy replies (1 turns it off)",
    )


def dimension_from_file(path: str, name: str | None = None) -> Dimension:
    """A custom dimension's examples file; a missing or malformed one exits with what is wrong."""
    try:
        return read_examples(path, name=name)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


def spec_from_file(path: str, name: str | None = None) -> DimensionSpec:
    """The recipe's spec of a custom dimension (its train pairs, judge and pole prompts) from a file."""
    from langchain_steer.recipe import DimensionSpec

    try:
        return DimensionSpec.from_examples(dimension_from_file(path, name))
    except ValueError as error:  # e.g. no lexicon can be derived from too few replies
        raise SystemExit(f"error: {path}: {error}") from None
