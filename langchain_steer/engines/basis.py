"""A steering basis: every loaded vector stacked per layer, so that a batch is steered by one matrix product.

Per-request steering in a serving engine must not cost more when more distinct users share a batch. The
basis makes the cost independent of that number. At engine start each steered layer ``l`` gets a matrix
``B[l]`` of shape ``(2 * dimensions, hidden)``. Row ``2d`` is dimension ``d``'s positive direction at that
layer and row ``2d + 1`` its negative side (``-direction`` for a symmetric vector). A request's strengths
become one coefficient row ``c`` of length ``2 * dimensions``: at strength ``s > 0`` entry ``2d`` is
``s * functional_range``, at ``s < 0`` entry ``2d + 1`` is ``|s| * negative_range``, everything else is 0.
Those are the same factors :func:`~langchain_steer.hooks.layer_offsets` uses, so ``c @ B[l]`` is the offset
our HF engine adds at layer ``l``. A forward pass over ``T`` flattened tokens stacks the rows of their
requests into ``C`` of shape ``(T, 2 * dimensions)`` and adds ``C @ B[l]`` at every steered layer.

The basis is built once from the vectors the operator configured and travels to the engine's workers as
bytes (:meth:`SteeringBasis.to_bytes`): a request carries only ``{"cost": -0.7}``, never a vector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["SteeringBasis"]

_MAX_STRENGTH = (
    2.0  # the same cap as hooks.MAX_STRENGTH; workers import this module without the package
)


@dataclass(frozen=True)
class SteeringBasis:
    """Stacked directions of a set of steering vectors, and the ranges that turn strengths into coefficients.

    Attributes:
        dimensions: dimension names, sorted; dimension ``d`` owns rows ``2d`` and ``2d + 1``.
        positive_ranges: ``functional_range`` per dimension (the factor at strength +1).
        negative_ranges: the factor at strength -1 per dimension.
        matrices: layer index → float32 tensor ``(2 * len(dimensions), hidden)`` on the CPU.
        positions: the position policy, ``"all"`` or ``"generated"``.
    """

    dimensions: tuple[str, ...]
    positive_ranges: tuple[float, ...]
    negative_ranges: tuple[float, ...]
    matrices: dict[int, torch.Tensor]
    positions: str = "all"

    @classmethod
    def from_vectors(cls, vectors: Mapping[str, Any], positions: str = "all") -> SteeringBasis:
        """Stack ``vectors`` (name → :class:`~langchain_steer.vectors.SteeringVector`).

        Raises:
            ValueError: no vectors, vectors of different hidden sizes, or a bad position policy.
        """
        if not vectors:
            raise ValueError("A steering basis needs at least one vector.")
        if positions not in ("all", "generated"):
            raise ValueError(f"positions must be 'all' or 'generated', not {positions!r}.")
        names = tuple(sorted(vectors))
        sizes = {vectors[name].hidden_size for name in names}
        if len(sizes) != 1:
            raise ValueError(f"Steering vectors disagree on the hidden size: {sorted(sizes)}.")
        hidden = sizes.pop()
        layers = sorted({layer for name in names for layer in vectors[name].layers})
        matrices = {
            layer: torch.zeros(2 * len(names), hidden, dtype=torch.float32) for layer in layers
        }
        negative_ranges = []
        for d, name in enumerate(names):
            vector = vectors[name]
            negative, negative_range = vector.negative_side
            negative_ranges.append(float(negative_range))
            for row, table in ((2 * d, vector.directions), (2 * d + 1, negative)):
                for layer, direction in table.items():
                    matrices[layer][row] = direction.detach().to("cpu", torch.float32)
        return cls(
            dimensions=names,
            positive_ranges=tuple(float(vectors[n].functional_range) for n in names),
            negative_ranges=tuple(negative_ranges),
            matrices=matrices,
            positions=positions,
        )

    @property
    def layers(self) -> list[int]:
        """The steered layer indices, sorted."""
        return sorted(self.matrices)

    @property
    def width(self) -> int:
        """The length of a coefficient row: two per dimension."""
        return 2 * len(self.dimensions)

    def coefficients(self, strengths: Mapping[str, Any] | str) -> torch.Tensor | None:
        """One request's coefficient row (float32, ``(width,)``), or ``None`` when it steers nothing.

        A worker cannot answer a request with an error, so this never raises: names the basis does not
        hold and values that are not finite numbers are left out, and strengths are clamped to ±2 (the
        chat model and our server reject such input with a clear error before it gets here). A JSON string,
        which is how vLLM's own server passes ``vllm_xargs``, is read as the mapping it encodes.
        """
        if isinstance(strengths, str):  # vLLM's own server: vllm_xargs values are strings or numbers
            try:
                strengths = json.loads(strengths)
            except ValueError:
                return None
        row = torch.zeros(self.width, dtype=torch.float64)
        steered = False
        for d, name in enumerate(self.dimensions):
            value = strengths.get(name) if isinstance(strengths, Mapping) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            value = float(value)
            if not math.isfinite(value) or value == 0:
                continue
            value = max(-_MAX_STRENGTH, min(_MAX_STRENGTH, value))
            if value > 0:
                row[2 * d] = value * self.positive_ranges[d]
            else:
                row[2 * d + 1] = -value * self.negative_ranges[d]
            steered = True
        # float64 then float32, like layer_offsets: the same factor, to the bit.
        return row.to(torch.float32) if steered else None

    # -- transport --------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialise for an RPC to the engine's workers (safetensors, with the header in its metadata)."""
        from safetensors.torch import save

        header = {
            "dimensions": list(self.dimensions),
            "positive_ranges": list(self.positive_ranges),
            "negative_ranges": list(self.negative_ranges),
            "positions": self.positions,
        }
        tensors = {f"layer.{layer}": matrix.contiguous() for layer, matrix in self.matrices.items()}
        return bytes(save(tensors, metadata={"basis": json.dumps(header)}))

    @classmethod
    def from_bytes(cls, payload: bytes) -> SteeringBasis:
        """Rebuild a basis written by :meth:`to_bytes`.

        Raises:
            ValueError: the payload is not a steering basis.
        """
        from safetensors.torch import load

        try:
            tensors = load(payload)
            # The header lives in the safetensors metadata, which `load` does not return.
            header = json.loads(_metadata(payload)["basis"])
            matrices = {int(key.split(".", 1)[1]): value for key, value in tensors.items()}
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(f"Not a steering basis: {error}") from error
        return cls(
            dimensions=tuple(header["dimensions"]),
            positive_ranges=tuple(float(v) for v in header["positive_ranges"]),
            negative_ranges=tuple(float(v) for v in header["negative_ranges"]),
            matrices=matrices,
            positions=str(header.get("positions", "all")),
        )


def _metadata(payload: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors payload (its JSON header follows an 8-byte length)."""
    length = int.from_bytes(payload[:8], "little")
    return dict(json.loads(payload[8 : 8 + length]).get("__metadata__") or {})
