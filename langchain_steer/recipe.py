"""The recipe that makes a set of dimension vectors for a model, as the shipped demo vectors were made.

:func:`build_vectors` runs, for each dimension:

1. :func:`~langchain_steer.extract.extract_vector` with ``method="pole_mean"``: each pole's mean reply
   activation against one shared anchor (by default every built-in dimension's training replies), on the
   default depth band, weighted by the residual norm, under the system prompt the vectors will be used with;
2. :func:`~langchain_steer.disentangle.orthogonalize` against the writing-system direction, so that no pole
   switches the reply into another script;
3. any :class:`CounterSteer` steps, which cancel a measured drift of one dimension into another;
4. :func:`~langchain_steer.eval.range_calibration.calibrate_range` on each side, on requests kept apart from
   the ones the vectors will be measured on.

``langchain-steer extract`` and ``examples/build_demo_vectors.py`` both call it. Which choices won, and by
how much, is measured in ``docs/eval.md``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch

from langchain_steer.anchors import anchor_activations
from langchain_steer.dimensions.examples import Dimension, Example, read_examples
from langchain_steer.disentangle import counter_steer, orthogonalize, writing_system_direction
from langchain_steer.eval.judge import PoleJudge
from langchain_steer.eval.range_calibration import DEFAULT_FRACTIONS, calibrate_range
from langchain_steer.eval.settings import ReplySettings
from langchain_steer.extract import DEFAULT_BAND, Method, extract_vector
from langchain_steer.vectors import SteeringVector

logger = logging.getLogger(__name__)

DEFAULT_CALIBRATION_PROMPTS = 30
"""How many built-in ``dev`` requests calibration uses unless told: the 30 written before any tuning."""

__all__ = [
    "DEFAULT_CALIBRATION_PROMPTS",
    "CounterSteer",
    "DimensionSpec",
    "build_vectors",
    "parse_counter_steer",
]

Side = Literal["positive", "negative"]


@dataclasses.dataclass(frozen=True)
class DimensionSpec:
    """Everything the recipe needs for one dimension.

    Attributes:
        name: the dimension's name.
        poles: ``(negative, positive)`` pole names.
        negative: training replies at the negative pole.
        positive: training replies at the positive pole (ideally answers to the same requests).
        judge: the pole judge range calibration reads replies with (``None``: no calibration possible).
        instructions: ``{"negative": ..., "positive": ...}``: what a user says to ask for each pole, for the
            prompted-pole baseline (``None``: no calibration possible).
    """

    name: str
    poles: tuple[str, str]
    negative: Sequence[Example]
    positive: Sequence[Example]
    judge: PoleJudge | None = None
    instructions: Mapping[str, str] | None = None

    @classmethod
    def builtin(cls, name: str) -> DimensionSpec:
        """A built-in dimension's training pairs, judge and pole instructions."""
        from langchain_steer.dimensions import load_dimension

        dimension = load_dimension(name)
        negative, positive = dimension.examples("train")
        return cls(
            name=name,
            poles=dimension.poles,
            negative=negative,
            positive=positive,
            judge=PoleJudge.for_dimension(name),
            instructions=dimension.pole_prompts,
        )


    @classmethod
    def from_examples(
        cls, source: str | os.PathLike[str] | Dimension, name: str | None = None
    ) -> DimensionSpec:
        """A custom dimension from an examples file (the built-in dimension format, ``docs/engine.md``).

        Its ``train`` pairs are extracted from. The judge reads the file's ``pole_words``, or a lexicon
        derived from the training replies (:meth:`PoleJudge.from_examples`) when it has none; without
        ``pole_prompts`` the spec has no instructions, so its range cannot be calibrated.

        Args:
            source: the file, or a :class:`~langchain_steer.dimensions.Dimension` already read from one.
            name: the name to store (default: the file's ``name``, else its stem).

        Raises:
            FileNotFoundError: no file at ``source``.
            ValueError: the file is not in the format (see :func:`~langchain_steer.dimensions.read_examples`).
        """
        dimension = read_examples(source, name=name) if not isinstance(source, Dimension) else source
        negative, positive = dimension.examples("train")
        words = dimension.pole_words
        judge = (
            PoleJudge(dimension.name, dimension.poles, {k: tuple(v) for k, v in words.items()})
            if words
            else PoleJudge.from_examples(
                [e.response for e in negative],
                [e.response for e in positive],
                dimension=dimension.name,
                poles=dimension.poles,
            )
        )
        return cls(
            dimension.name, dimension.poles, negative, positive, judge, dimension.pole_prompts or None
        )


@dataclasses.dataclass(frozen=True)
class CounterSteer:
    """One counter-steering step (see :func:`langchain_steer.disentangle.counter_steer`).

    ``CounterSteer("age", "positive", "time", "positive", 0.8)`` adds 0.8 of ``time``'s morning pole to
    ``age``'s adults-only side.
    """

    dimension: str
    side: Side
    other: str
    toward: Side
    weight: float


def parse_counter_steer(spec: str) -> CounterSteer:
    """Parse ``"age:positive=time:positive:0.8"`` into a :class:`CounterSteer`.

    Raises:
        ValueError: a malformed spec (the message shows the format).
    """
    fmt = "DIMENSION:SIDE=OTHER:SIDE:WEIGHT, e.g. age:positive=time:positive:0.8"
    try:
        left, right = spec.split("=")
        dimension, side = left.split(":")
        other, toward, weight = right.split(":")
        step = CounterSteer(
            dimension.strip(),
            side.strip(),  # type: ignore[arg-type]  # checked below
            other.strip(),
            toward.strip(),  # type: ignore[arg-type]
            float(weight),
        )
    except ValueError as error:
        raise ValueError(f"--counter-steer takes {fmt}; got {spec!r}.") from error
    if step.side not in ("positive", "negative") or step.toward not in ("positive", "negative"):
        raise ValueError(f"Sides are 'positive' or 'negative'; got {spec!r} ({fmt}).")
    return step


def build_vectors(
    model: Any,
    tokenizer: Any,
    specs: Sequence[DimensionSpec],
    *,
    system: str | None,
    anchor: Sequence[Example] | torch.Tensor | None = None,
    method: Method = "pole_mean",
    layers: Sequence[int] | None = None,
    band: tuple[float, float] = DEFAULT_BAND,
    top_k: int | None = None,
    project_writing_system: bool = True,
    counter_steers: Sequence[CounterSteer] = (),
    calibrate: bool = True,
    calibration_prompts: Sequence[str] | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    max_ratio: float = 1.3,
    max_degenerate: float = 0.05,
    batch_size: int = 8,
    progress: bool = True,
    on_vector: Callable[[SteeringVector], None] | None = None,
    layer_path: str | None = None,
) -> dict[str, SteeringVector]:
    """Extract, disentangle and calibrate one vector per spec (see the module doc).

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        specs: the dimensions.
        system: the system prompt the vectors will be used under (``None``: none).
        anchor: for ``pole_mean``: the anchor replies or their mean activations (default: every built-in
            dimension's training replies).
        method: the extraction method.
        layers: explicit layers; otherwise the ``band``, or its ``top_k`` layers by probe accuracy.
        band: the depth band.
        top_k: see :func:`~langchain_steer.extract.extract_vector`.
        project_writing_system: project the writing-system direction out of every vector.
        counter_steers: steps applied after extraction, in order; their dimensions must be among the specs.
        calibrate: set each vector's ranges with :func:`calibrate_range`.
        calibration_prompts: everyday requests for calibration (default: the first
            :data:`DEFAULT_CALIBRATION_PROMPTS` built-in ``dev`` requests, as the shipped vectors used).
        fractions: the calibration grid.
        max_ratio: the perplexity-ratio limit of calibration.
        max_degenerate: the degenerate-share limit of calibration.
        batch_size: examples per forward pass in extraction; calibration generates 16 rows at a time.
        progress: show progress bars.
        on_vector: called with each finished vector, e.g. to save it as soon as it is ready.
        layer_path: explicit path to the decoder blocks, for models whose layers are not found
            automatically; used by every step.

    Raises:
        ValueError: a counter-steer naming an unknown dimension, or calibration without a judge and pole
            instructions.
    """
    from langchain_steer.dimensions import everyday_requests, reference_examples

    names = [spec.name for spec in specs]
    for step in counter_steers:
        if step.dimension not in names or step.other not in names:
            raise ValueError(
                f"Counter-steering {step.dimension!r} with {step.other!r} needs both among the "
                f"dimensions being built ({', '.join(names)})."
            )
    if calibrate:
        for spec in specs:
            if spec.judge is None or spec.instructions is None:
                raise ValueError(
                    f"Calibrating {spec.name!r} needs a pole judge and pole instructions ('pole_prompts'); "
                    "add them to its examples, or skip calibration."
                )
    if method == "pole_mean" and not isinstance(anchor, torch.Tensor):
        anchor = anchor_activations(
            model,
            tokenizer,
            list(anchor) if anchor is not None else reference_examples(),
            system=system,
            batch_size=batch_size,
            progress=progress,
            layer_path=layer_path,
        )
    script = (
        writing_system_direction(model, tokenizer, system=system, layer_path=layer_path)
        if project_writing_system
        else None
    )
    vectors: dict[str, SteeringVector] = {}
    for spec in specs:
        vector = extract_vector(
            model,
            tokenizer,
            spec.negative,
            spec.positive,
            name=spec.name,
            poles=spec.poles,
            method=method,
            anchor=anchor,
            system=system,
            layers=layers,
            band=band,
            top_k=top_k,
            batch_size=batch_size,
            progress=progress,
            layer_path=layer_path,
        )
        if script is not None:
            vector = orthogonalize(vector, [script], label="writing system")
        vectors[spec.name] = vector
    # Counter-steering reads the other dimension's extracted sides, before any of them is changed.
    extracted = dict(vectors)
    for step in counter_steers:
        vectors[step.dimension] = counter_steer(
            vectors[step.dimension],
            extracted[step.other],
            side=step.side,
            toward=step.toward,
            weight=step.weight,
        )
    prompts = list(calibration_prompts or everyday_requests("dev")[:DEFAULT_CALIBRATION_PROMPTS])
    for spec in specs:
        vector = vectors[spec.name]
        if calibrate:
            assert spec.judge is not None and spec.instructions is not None  # checked above
            outcome = calibrate_range(
                model,
                tokenizer,
                vector,
                prompts=prompts,
                judge=spec.judge,
                instructions=spec.instructions,
                fractions=fractions,
                max_ratio=max_ratio,
                max_degenerate=max_degenerate,
                settings=ReplySettings(system=system, progress=progress, layer_path=layer_path),
            )
            vector = outcome.vector
            logger.info(
                "%s: ranges -%g / +%g (%s / %s)",
                spec.name,
                outcome.negative_range,
                outcome.functional_range,
                outcome.stopped_by["negative"],
                outcome.stopped_by["positive"],
            )
        vectors[spec.name] = vector
        if on_vector is not None:
            on_vector(vector)
    return vectors
