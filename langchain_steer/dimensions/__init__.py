"""The paper's five lifestyle dimensions: contrastive data, evaluation requests and precomputed vectors.

Each dimension is a JSON file in ``data/`` with paired replies (the same request answered at both
poles) across gift, travel, restaurant and recipe tasks, split into ``train`` (extraction) and
``test`` (held out: the pole corpora of the evaluation). It also holds the pole lexicon the pole judge
reads (``pole_words``), a short description of each pole, and the sentence a user would say to ask for
each pole (``pole_prompts``, the prompted-pole baseline). ``data/requests.json`` holds everyday requests
that favour no pole (30 ``dev`` ones for tuning and range calibration, 40 held-out ``test`` ones for
measurement) and the lifestyle-planning system prompt. Vectors precomputed for the demo model live in
``vectors/demo/<name>.safetensors``.

=========  ===================  ======================
dimension  negative pole (-1)   positive pole (+1)
=========  ===================  ======================
cost       budget               luxury
ambiance   touristy/mainstream  hipster/local
age        kids/family          adults-only
time       evening              morning
culture    Asian                American
=========  ===================  ======================
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

from langchain_steer.dimensions.examples import Dimension, Example, Split, read_examples
from langchain_steer.vectors import SteeringVector

__all__ = [
    "DIMENSIONS",
    "PLANNER_SYSTEM_PROMPT",
    "Dimension",
    "Example",
    "NoBuiltinVectorsError",
    "builtin_vectors",
    "everyday_requests",
    "load_dimension",
    "read_examples",
    "reference_examples",
    "writing_system_examples",
]

DIMENSIONS: tuple[str, ...] = ("cost", "ambiance", "age", "time", "culture")
"""Names of the built-in dimensions, in the paper's order."""


@cache
def _requests() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("data", "requests.json").read_text("utf-8")
    return dict(json.loads(text))


PLANNER_SYSTEM_PROMPT: str = _requests()["system_prompt"]
"""The lifestyle-planning system prompt of ``langchain-steer demo``, the agent and the measurements.

As in the paper's chatbot, it makes the assistant recommend concrete places and things; unsteered, the demo
model otherwise answers many everyday requests with a refusal. The shipped vectors are extracted and
calibrated under it."""


def everyday_requests(split: Literal["dev", "test", "confirm", "final"]) -> list[str]:
    """Everyday requests that favour no pole of any built-in dimension.

    * ``"dev"`` (60) may be used to tune and to calibrate ranges. The first 30, written before any tuning,
      are what calibration uses by default; 30 more were added later for calibrating on more requests.
    * ``"test"`` (40), written before any tuning, is held out: the shipped vectors are measured on it.
    * ``"confirm"`` (40), written after ``"test"`` was first measured and before any further tuning, is the
      next held-out set: confirm a change made after seeing ``"test"`` on it.
    * ``"final"`` (40), written after ``"confirm"`` was measured and before any further tuning, is the
      held-out set for changes made after that.

    No request is in two splits or in the extraction data.

    Raises:
        ValueError: an unknown split.
    """
    if split not in ("dev", "test", "confirm", "final"):
        raise ValueError(f"split must be 'dev', 'test', 'confirm' or 'final', not {split!r}.")
    return list(_requests()[split])


@cache
def load_dimension(name: str) -> Dimension:
    """Load a built-in dimension's data.

    Raises:
        ValueError: ``name`` is not one of :data:`DIMENSIONS`.
    """
    if name not in DIMENSIONS:
        raise ValueError(
            f"Unknown dimension {name!r}; built-in dimensions: {', '.join(DIMENSIONS)}."
        )
    return read_examples(resources.files(__package__).joinpath("data", f"{name}.json"))


def writing_system_examples() -> tuple[list[Example], list[Example]]:
    """``(English replies, the same replies in Japanese or Chinese script)``, all to one request.

    The data of :func:`langchain_steer.disentangle.writing_system_direction` (``data/writing_systems.json``).
    """
    return read_examples(resources.files(__package__).joinpath("data", "writing_systems.json")).examples(
        "all"
    )


def reference_examples(split: Split = "train") -> list[Example]:
    """Every reply of every built-in dimension's ``split``, both poles: the default anchor of extraction.

    Measured against this broad mix of recommendation replies, each pole's mean keeps what is particular
    to that pole (see :func:`langchain_steer.extract.extract_vector`).
    """
    examples: list[Example] = []
    for name in DIMENSIONS:
        negative, positive = load_dimension(name).examples(split)
        examples.extend(negative + positive)
    return examples


class NoBuiltinVectorsError(ValueError):
    """No built-in vectors ship for the model asked for (a :class:`ValueError`)."""


def builtin_vectors(model: str = "demo") -> dict[str, SteeringVector]:
    """Return the five built-in dimensions' vectors for ``model``, keyed by dimension name.

    Vectors ship for ``"demo"`` (SmolLM2-135M-Instruct). For another model, extract your own with
    ``langchain-steer extract --model NAME --dimension cost --out cost.safetensors``.

    Raises:
        NoBuiltinVectorsError: no vectors ship for ``model`` (a ``ValueError``).
        ValueError: a shipped vector file is corrupt (the message names it).
    """
    shipped = resources.files(__package__).joinpath("vectors")
    # Match against the shipped names: joining a path-like `model` ("/some/folder") would escape the package.
    available = sorted(entry.name for entry in shipped.iterdir() if entry.is_dir())
    folder = shipped.joinpath(model)
    if model not in available:
        raise NoBuiltinVectorsError(
            f"No built-in vectors ship for model {model!r} (available: {', '.join(available)}). "
            "Extract them with `langchain-steer extract --model ... --dimension ...`."
        )
    vectors = {}
    for name in DIMENSIONS:
        with resources.as_file(folder.joinpath(f"{name}.safetensors")) as path:
            vectors[name] = SteeringVector.load(path)
    return vectors
