"""The paper's five lifestyle preference dimensions: contrastive data and precomputed vectors.

Each dimension is a JSON file in ``data/`` with paired replies (the same request answered at both
poles) across gift, travel, restaurant and recipe tasks, split into ``train`` (extraction) and
``test`` (calibration and evaluation). Vectors precomputed for the demo model live in
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

import dataclasses
import json
from functools import cache
from importlib import resources
from typing import Literal

from langchain_steer.extract import Example
from langchain_steer.vectors import SteeringVector

__all__ = ["DIMENSIONS", "Dimension", "builtin_vectors", "load_dimension"]

DIMENSIONS: tuple[str, ...] = ("cost", "ambiance", "age", "time", "culture")
"""Names of the built-in dimensions, in the paper's order."""

Split = Literal["train", "test", "all"]


@dataclasses.dataclass(frozen=True)
class Dimension:
    """A built-in preference dimension and its contrastive data.

    Attributes:
        name: e.g. ``"cost"``.
        negative: name of the pole at strength -1, e.g. ``"budget"``.
        positive: name of the pole at strength +1, e.g. ``"luxury"``.
        description: one sentence.
        demo_prompt: the neutral request ``langchain-steer demo`` answers.
        pole_words: ``{"negative": [...], "positive": [...]}`` words typical of each pole.
        eval_prompts: neutral held-out requests for evaluation.
        pairs: ``{"task", "prompt", "negative", "positive", "split"}`` records.
    """

    name: str
    negative: str
    positive: str
    description: str
    demo_prompt: str
    pole_words: dict[str, list[str]]
    eval_prompts: list[str]
    pairs: list[dict[str, str]]

    @property
    def poles(self) -> tuple[str, str]:
        """``(negative, positive)``."""
        return (self.negative, self.positive)

    def examples(self, split: Split = "train") -> tuple[list[Example], list[Example]]:
        """Return ``(negative examples, positive examples)`` of a split."""
        chosen = [p for p in self.pairs if split == "all" or p["split"] == split]
        negative = [Example(p["prompt"], p["negative"]) for p in chosen]
        positive = [Example(p["prompt"], p["positive"]) for p in chosen]
        return negative, positive


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
    text = resources.files(__package__).joinpath("data", f"{name}.json").read_text("utf-8")
    raw = json.loads(text)
    return Dimension(
        name=raw["name"],
        negative=raw["negative"],
        positive=raw["positive"],
        description=raw["description"],
        demo_prompt=raw["demo_prompt"],
        pole_words=raw["pole_words"],
        eval_prompts=raw["eval_prompts"],
        pairs=raw["examples"],
    )


def builtin_vectors(model: str = "demo") -> dict[str, SteeringVector]:
    """Return the five built-in dimensions' vectors for ``model``, keyed by dimension name.

    Vectors ship for ``"demo"`` (SmolLM2-135M-Instruct). For another model, extract your own with
    ``langchain-steer extract --model NAME --dimension cost --out cost.safetensors``.

    Raises:
        ValueError: no vectors ship for ``model``.
    """
    shipped = resources.files(__package__).joinpath("vectors")
    # Match against the shipped names: joining a path-like `model` ("/some/folder") would escape the package.
    available = sorted(entry.name for entry in shipped.iterdir() if entry.is_dir())
    folder = shipped.joinpath(model)
    if model not in available:
        raise ValueError(
            f"No built-in vectors ship for model {model!r} (available: {', '.join(available)}). "
            "Extract them with `langchain-steer extract --model ... --dimension ...`."
        )
    vectors = {}
    for name in DIMENSIONS:
        with resources.as_file(folder.joinpath(f"{name}.safetensors")) as path:
            vectors[name] = SteeringVector.load(path)
    return vectors
