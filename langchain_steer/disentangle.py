"""Remove what one steering vector shares with others, so that each dimension moves only its own poles.

Three tools, each returning a new :class:`~langchain_steer.vectors.SteeringVector` (vectors are values):

* :func:`orthogonalize`: project, layer by layer and on both sides, the span of other directions out of a
  vector, keeping each layer's norm. Use it for a component you can name as a direction, such as
  :func:`writing_system_direction`.
* :func:`writing_system_direction`: the direction of writing in Japanese or Chinese script rather than
  English, from the model's activations on translated sentence pairs. On the demo model the Asian pole of
  ``culture`` otherwise switches replies into another script.
* :func:`counter_steer`: add a share of another dimension's pole to one side of a vector. Projection removes
  only the part of a vector that lies along another's direction; a model can still respond to what is left
  by moving the other dimension (on the demo model, "adults-only" drifts to "at night" through every
  layer). Counter-steering cancels that measured drift; choose ``weight`` on development prompts with
  :meth:`langchain_steer.eval.pole_eval.PoleEvaluation.cross_effects` and check it on held-out ones.

Every step is recorded in the vector's ``extra["disentangle"]`` list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from langchain_steer.dimensions import writing_system_examples
from langchain_steer.extract import collect_activations
from langchain_steer.vectors import SteeringVector

__all__ = ["counter_steer", "orthogonalize", "writing_system_direction"]

Side = Literal["positive", "negative"]
Directions = Mapping[int, torch.Tensor]


def _sides(vector: SteeringVector) -> dict[str, dict[int, torch.Tensor]]:
    negative, _ = vector.negative_side
    return {"positive": dict(vector.directions), "negative": negative}


def _record(vector: SteeringVector, step: dict[str, Any]) -> dict[str, Any]:
    return {**vector.extra, "disentangle": [*vector.extra.get("disentangle", []), step]}


def orthogonalize(
    vector: SteeringVector,
    against: Sequence[SteeringVector | Directions],
    *,
    label: str = "",
) -> SteeringVector:
    """Project the span of ``against``'s directions out of every layer of ``vector``, on both sides.

    Each layer keeps its norm, so the vector's ranges keep their meaning. Layers ``against`` does not cover
    are left alone. A symmetric vector stays symmetric.

    Args:
        vector: the vector to clean.
        against: vectors (both of their sides count) or ``{layer: direction}`` mappings to remove.
        label: a name for the step, recorded in ``extra["disentangle"]``.

    Raises:
        ValueError: directions of another hidden size, or a layer whose direction lies entirely in the span.
    """
    bases: dict[int, list[torch.Tensor]] = {}
    for item in against:
        maps = list(_sides(item).values()) if isinstance(item, SteeringVector) else [item]
        for directions in maps:
            for layer, direction in directions.items():
                if direction.shape != (vector.hidden_size,):
                    raise ValueError(
                        f"Cannot orthogonalize a vector of hidden size {vector.hidden_size} against a "
                        f"direction of shape {tuple(direction.shape)}."
                    )
                bases.setdefault(int(layer), []).append(direction.detach().double().cpu())

    def clean(directions: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        out = {}
        for layer, direction in directions.items():
            if layer not in bases:
                out[layer] = direction
                continue
            q, _ = torch.linalg.qr(torch.stack(bases[layer], 1))
            original = direction.detach().double().cpu()
            rest = original - q @ (q.T @ original)
            if float(rest.norm()) <= 1e-9 * max(float(original.norm()), 1e-30):
                raise ValueError(
                    f"Layer {layer} of {vector.name!r} lies entirely in the removed span."
                )
            out[layer] = (rest * (original.norm() / rest.norm())).to(direction)
        return out

    step = {"step": "orthogonalize", "against": label or f"{len(against)} direction sets"}
    if vector.symmetric:
        return vector._replace(
            directions=clean(dict(vector.directions)), extra=_record(vector, step)
        )
    sides = _sides(vector)
    return vector._replace(
        directions=clean(sides["positive"]),
        negative_directions=clean(sides["negative"]),
        extra=_record(vector, step),
    )


def counter_steer(
    vector: SteeringVector,
    other: SteeringVector,
    *,
    side: Side,
    toward: Side,
    weight: float,
) -> SteeringVector:
    """Add ``weight`` times ``other``'s ``toward`` pole to ``vector``'s ``side`` pole, per layer.

    On each layer the two directions are taken at unit norm, mixed, and the mix is rescaled to the norm
    ``vector`` had there. Only ``side`` changes; the vector becomes two-sided if it was not.

    Example: the demo's ``age`` vector drifts towards "evening" when steered to adults-only, so its
    positive side gets a share of ``time``'s morning pole::

        age = counter_steer(age, time, side="positive", toward="positive", weight=0.8)

    Raises:
        ValueError: a weight outside ``[0, 2]``, or vectors of different hidden sizes.
    """
    if not 0 <= weight <= 2:
        raise ValueError(f"weight must be between 0 and 2, not {weight}.")
    if other.hidden_size != vector.hidden_size:
        raise ValueError(
            f"Cannot counter-steer a vector of hidden size {vector.hidden_size} with one of "
            f"{other.hidden_size}."
        )
    sides = _sides(vector)
    push = _sides(other)[toward]
    mixed = {}
    for layer, direction in sides[side].items():
        if layer not in push:
            mixed[layer] = direction
            continue
        base = direction.detach().double().cpu()
        extra = push[layer].detach().double().cpu()
        blend = base / base.norm() + weight * extra / extra.norm()
        mixed[layer] = (blend * (base.norm() / blend.norm())).to(direction)
    sides[side] = mixed
    negative_range = vector.negative_side[1]
    step = {
        "step": "counter_steer",
        "side": side,
        "other": other.name,
        "toward": toward,
        "weight": weight,
    }
    return vector._replace(
        directions=sides["positive"],
        negative_directions=sides["negative"],
        negative_range=negative_range,
        extra=_record(vector, step),
    )


def writing_system_direction(
    model: nn.Module,
    tokenizer: Any,
    *,
    system: str | None = None,
    layers: Sequence[int] | None = None,
    progress: bool = False,
    layer_path: str | None = None,
) -> dict[int, torch.Tensor]:
    """The per-layer direction from English replies to the same replies in Japanese or Chinese script.

    It is the mean difference of the model's reply activations on 16 translated sentence pairs shipped in
    ``dimensions/data/writing_systems.json``. Pass it to :func:`orthogonalize`.

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        system: the system prompt to render before the request (use the one you extract with).
        layers: the layers to return (default: all).
        progress: show a progress bar.
        layer_path: explicit path to the decoder blocks.
    """
    english, other = writing_system_examples()
    common: dict[str, Any] = {"system": system, "progress": progress, "layer_path": layer_path}
    difference = collect_activations(model, tokenizer, other, **common).mean(
        1
    ) - collect_activations(model, tokenizer, english, **common).mean(1)
    chosen = range(difference.shape[0]) if layers is None else layers
    return {int(layer): difference[layer] for layer in chosen}
