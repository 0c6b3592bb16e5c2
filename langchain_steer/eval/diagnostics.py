"""Vector quality diagnostics: is each direction separable, distinct from the others, and sensibly sized?

* **Probe accuracy per layer**: cross-validated logistic-probe accuracy of the two poles' activations at
  every layer (recorded by :func:`langchain_steer.extract.extract_vector`, or recomputed here). Layers near
  chance carry no usable direction.
* **Cosine similarity between dimensions**: the mean cosine of two vectors' axes over the layers they
  share, where a layer's axis runs from the negative side's offset to the positive side's (for a symmetric
  vector, its direction). A large value means entangled directions: steering one also steers the other.
  Behaviour can be entangled at small cosines too; :mod:`langchain_steer.eval.pole_eval` measures it.
* **Norm relative to the residual stream**: the norm strength +1 adds over the median norm of the residual
  stream at each steered layer. A few percent is typical; tens of percent overwrite the model's state.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from langchain_steer.dimensions.examples import Example
from langchain_steer.extract import collect_activations, probe_accuracies
from langchain_steer.generate import encode_prompts
from langchain_steer.layers import find_layers
from langchain_steer.models import model_lock
from langchain_steer.prompts import render_chat
from langchain_steer.tensors import model_device
from langchain_steer.vectors import SteeringVector

__all__ = [
    "Diagnostics",
    "cosine_matrix",
    "diagnose",
    "layer_probe_accuracies",
    "median_relative_norm",
    "residual_norms",
]


@torch.no_grad()
def residual_norms(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    system: str | None = None,
    layer_path: str | None = None,
) -> dict[int, float]:
    """Median L2 norm of every decoder block's output over the tokens of ``prompts`` (chat-rendered).

    The first position is left out: many models park a huge "attention sink" activation there that says
    nothing about the norm steering competes with.

    Returns:
        layer index → median norm.

    Raises:
        ValueError: no prompts.
    """
    if not prompts:
        raise ValueError("residual_norms needs at least one prompt.")
    blocks = find_layers(model, layer_path)
    collected: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(blocks))}

    def recorder(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            collected[layer].append(hidden[0, 1:].float().norm(dim=-1).cpu())

        return hook

    device = model_device(model)
    for prompt in prompts:
        chat = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        ids = encode_prompts(tokenizer, [render_chat(tokenizer, chat)], device)["input_ids"]
        # Per pass: the norms must be the unsteered model's, never a serving batch's.
        with model_lock(model):
            handles = [block.register_forward_hook(recorder(i)) for i, block in enumerate(blocks)]
            try:
                model(input_ids=ids, use_cache=False)
            finally:
                for handle in handles:
                    handle.remove()
    return {i: float(torch.cat(v).median()) for i, v in collected.items()}


def layer_probe_accuracies(
    model: Any,
    tokenizer: Any,
    negative: Sequence[Example],
    positive: Sequence[Example],
    *,
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
) -> list[float]:
    """Cross-validated probe accuracy at every layer for a pair of example sets (5 paired folds).

    ``layer_path`` is the explicit path to the decoder blocks, for models whose layers are not found
    automatically.
    """
    common: dict[str, Any] = {"batch_size": batch_size, "progress": progress, "layer_path": layer_path}
    neg = collect_activations(model, tokenizer, negative, **common)
    pos = collect_activations(model, tokenizer, positive, **common)
    return probe_accuracies(neg, pos)


def _axis(vector: SteeringVector, layer: int) -> torch.Tensor:
    """From the negative side's offset at ``layer`` to the positive side's (either may be absent)."""
    negative, _ = vector.negative_side
    zero = torch.zeros(vector.hidden_size)
    positive = vector.directions.get(layer, zero).float().cpu()
    return positive - negative.get(layer, zero).float().cpu()


def cosine_matrix(
    vectors: Mapping[str, SteeringVector],
) -> tuple[list[str], list[list[float | None]]]:
    """Mean cosine similarity of every pair of vectors over the layers they share.

    Returns:
        ``(names, matrix)`` where ``matrix[i][j]`` is ``None`` when the two vectors share no layer.
    """
    names = list(vectors)
    matrix: list[list[float | None]] = []
    for a in names:
        row: list[float | None] = []
        for b in names:
            shared = sorted(set(vectors[a].layers) & set(vectors[b].layers))
            if not shared:
                row.append(None)
                continue
            cosines = [
                float(
                    torch.nn.functional.cosine_similarity(
                        _axis(vectors[a], layer),
                        _axis(vectors[b], layer),
                        dim=0,
                    )
                )
                for layer in shared
            ]
            row.append(round(sum(cosines) / len(cosines), 4))
        matrix.append(row)
    return names, matrix


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """The diagnostics of a set of vectors for one model.

    Attributes:
        probe_accuracy: dimension → per-layer probe accuracy (index = layer).
        steered_layers: dimension → the layers its vector steers.
        names: dimension order of ``cosine``.
        cosine: mean cosine between dimensions over shared layers (``None``: no shared layer).
        residual_norm: layer → median residual norm on the prompts.
        relative_norm: dimension → norm added at strength +1 over the residual norm, per steered layer.
    """

    probe_accuracy: dict[str, list[float]]
    steered_layers: dict[str, list[int]]
    names: list[str]
    cosine: list[list[float | None]]
    residual_norm: dict[int, float]
    relative_norm: dict[str, dict[int, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (layer keys become strings)."""
        return {
            "schema": "langchain-steer/diagnostics@1",
            "probe_accuracy": self.probe_accuracy,
            "steered_layers": self.steered_layers,
            "names": self.names,
            "cosine": self.cosine,
            "residual_norm": {str(k): round(v, 3) for k, v in self.residual_norm.items()},
            "relative_norm": {
                name: {str(k): round(v, 5) for k, v in per.items()}
                for name, per in self.relative_norm.items()
            },
        }

    def largest_overlap(self) -> tuple[str, str, float] | None:
        """The most entangled pair of different dimensions, by absolute cosine."""
        pairs = [
            (self.names[i], self.names[j], value)
            for i, row in enumerate(self.cosine)
            for j, value in enumerate(row)
            if j > i and value is not None
        ]
        return max(pairs, key=lambda p: abs(p[2])) if pairs else None


def diagnose(
    model: Any,
    tokenizer: Any,
    vectors: Mapping[str, SteeringVector],
    prompts: Sequence[str],
    *,
    examples: Mapping[str, tuple[Sequence[Example], Sequence[Example]]] | None = None,
    progress: bool = True,
    layer_path: str | None = None,
) -> Diagnostics:
    """Compute every diagnostic for ``vectors``.

    Args:
        model: the model the vectors were made for.
        tokenizer: its tokenizer.
        vectors: dimension → vector.
        prompts: neutral requests to measure the residual norm on.
        examples: dimension → ``(negative, positive)`` examples to recompute probe accuracies from. Without
            them, the accuracies recorded in each vector at extraction are used.
        progress: show progress bars.
        layer_path: explicit path to the decoder blocks.

    Raises:
        ValueError: a vector has no recorded probe accuracies and no examples were given for it.
    """
    accuracy: dict[str, list[float]] = {}
    for name, vector in vectors.items():
        if examples and name in examples:
            negative, positive = examples[name]
            accuracy[name] = layer_probe_accuracies(
                model, tokenizer, negative, positive, progress=progress, layer_path=layer_path
            )
            continue
        recorded = vector.extra.get("probe_accuracy")
        if not recorded:
            raise ValueError(
                f"Vector {name!r} records no probe accuracies; pass its examples to recompute them."
            )
        accuracy[name] = [float(recorded[k]) for k in sorted(recorded, key=int)]
    norms = residual_norms(model, tokenizer, prompts, layer_path=layer_path)
    names, cosine = cosine_matrix(vectors)
    relative = {
        name: {
            layer: (float(offset.norm()) / norms[layer] if norms[layer] > 0 else math.inf)
            for layer, offset in v.offsets(1.0).items()
        }
        for name, v in vectors.items()
    }
    return Diagnostics(
        probe_accuracy=accuracy,
        steered_layers={name: v.layers for name, v in vectors.items()},
        names=names,
        cosine=cosine,
        residual_norm=norms,
        relative_norm=relative,
    )


def median_relative_norm(diagnostics: Diagnostics, name: str) -> float:
    """The median over a vector's layers of its functional range relative to the residual norm."""
    return statistics.median(diagnostics.relative_norm[name].values())
