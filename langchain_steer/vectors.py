"""``SteeringVector``: one steering direction per layer, with the metadata that makes it reusable.

A vector is an immutable value: arithmetic and :meth:`SteeringVector.to` return new vectors.

**Strength unit.** ``functional_range`` is the norm added to the residual stream at strength ``±1``:
the strongest steering that keeps the model's text fluent (see :mod:`langchain_steer.extract` for how
it is calibrated). At strength ``s`` a hook adds ``s * functional_range * direction`` to the output of
each layer in the vector. Directions made by extraction are unit vectors, so the strength is a
fraction of the fluent range whatever the model's residual norm.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from langchain_steer.layers import find_layers, hidden_size

__all__ = ["SteeringVector", "load_vectors"]

_FORMAT_VERSION = 1
_METADATA_KEY = "langchain_steer"


def _frozen(directions: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    return {int(layer): tensor.detach() for layer, tensor in sorted(directions.items())}


@dataclasses.dataclass(frozen=True, eq=False)
class SteeringVector:
    """A steering direction for a set of decoder layers of one model family.

    Attributes:
        directions: layer index → tensor of shape ``(hidden_size,)``.
        name: the dimension, e.g. ``"cost"``.
        model_id: the model the vector was extracted from (informative; the hard check is the
            hidden size).
        method: how it was made: ``"mean_diff"``, ``"pca"``, ``"probe"``, or ``"combined"``.
        poles: ``(negative, positive)`` pole names, e.g. ``("budget", "luxury")``.
        functional_range: residual-stream norm added at strength ±1.
        examples_hash: SHA-256 of the examples the vector was extracted from.
        extra: free-form JSON-serialisable details (probe accuracies, calibration sweep...).
    """

    directions: Mapping[int, torch.Tensor]
    name: str = ""
    model_id: str = ""
    method: str = "mean_diff"
    poles: tuple[str, str] = ("negative", "positive")
    functional_range: float = 1.0
    examples_hash: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise ValueError("A SteeringVector needs at least one layer direction.")
        directions = _frozen(self.directions)
        sizes = {tuple(t.shape) for t in directions.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(
                f"Every direction must be a 1-D tensor of one size; got shapes {sizes}."
            )
        if not math.isfinite(self.functional_range) or self.functional_range < 0:
            raise ValueError(
                f"functional_range must be a finite number >= 0, not {self.functional_range}."
            )
        object.__setattr__(self, "directions", directions)
        object.__setattr__(self, "poles", tuple(self.poles))
        object.__setattr__(self, "extra", dict(self.extra))

    # -- derived properties -------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        """Sorted layer indices this vector steers."""
        return list(self.directions)

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream the vector was made for."""
        return int(next(iter(self.directions.values())).shape[0])

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the stored directions."""
        return next(iter(self.directions.values())).dtype

    # -- value semantics ------------------------------------------------------------------------
    def _replace(self, **changes: Any) -> SteeringVector:
        return dataclasses.replace(self, **changes)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> SteeringVector:
        """Return a copy with every direction moved to ``device`` and/or cast to ``dtype``."""
        return self._replace(
            directions={k: v.to(device=device, dtype=dtype) for k, v in self.directions.items()}
        )

    def __mul__(self, factor: float) -> SteeringVector:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        if not math.isfinite(factor):
            raise ValueError(f"Cannot scale a SteeringVector by {factor}.")
        return self._replace(directions={k: v * factor for k, v in self.directions.items()})

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> SteeringVector:
        if isinstance(divisor, bool) or not isinstance(divisor, (int, float)) or divisor == 0:
            return NotImplemented
        return self * (1.0 / divisor)

    def __neg__(self) -> SteeringVector:
        return self._replace(
            directions={k: -v for k, v in self.directions.items()},
            poles=(self.poles[1], self.poles[0]),
        )

    def __add__(self, other: object) -> SteeringVector:
        """Sum two vectors layer by layer (a layer missing from one side counts as zero).

        With equal ``functional_range`` the range is kept. Otherwise each side's range is folded
        into its directions and the sum gets range 1, so that ``(a + b)`` at strength ``s`` adds
        exactly what ``a`` and ``b`` at strength ``s`` would add together.
        """
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.hidden_size != self.hidden_size:
            raise ValueError(
                f"Cannot add vectors of hidden size {self.hidden_size} and {other.hidden_size}."
            )
        if math.isclose(self.functional_range, other.functional_range):
            scale_a = scale_b = 1.0
            functional_range = self.functional_range
        else:
            scale_a, scale_b, functional_range = self.functional_range, other.functional_range, 1.0
        directions: dict[int, torch.Tensor] = {}
        for layer in sorted(set(self.directions) | set(other.directions)):
            total = None
            for vector, scale in ((self, scale_a), (other, scale_b)):
                if layer in vector.directions:
                    part = vector.directions[layer] * scale
                    total = part if total is None else total + part.to(total)
            assert total is not None  # the layer came from one of the two sides
            directions[layer] = total
        same = self.name == other.name
        return self._replace(
            directions=directions,
            name=self.name if same else f"{self.name}+{other.name}",
            method=self.method if self.method == other.method else "combined",
            poles=self.poles if self.poles == other.poles else ("negative", "positive"),
            functional_range=functional_range,
            examples_hash=self.examples_hash if same else "",
            extra={},
        )

    def __sub__(self, other: object) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        difference = self + (-other)
        return dataclasses.replace(difference, poles=self.poles, name=self.name)

    def __repr__(self) -> str:
        return (
            f"SteeringVector(name={self.name!r}, model_id={self.model_id!r}, method={self.method!r}, "
            f"poles={self.poles}, layers={self.layers}, hidden_size={self.hidden_size}, "
            f"functional_range={self.functional_range:g})"
        )

    # -- checks ---------------------------------------------------------------------------------
    def validate_for(self, model: nn.Module, layer_path: str | None = None) -> None:
        """Check that this vector fits ``model``: same hidden size, layers that exist.

        Raises:
            ValueError: with the vector's name, what it expects and what the model has.
        """
        size = hidden_size(model)
        if size != self.hidden_size:
            raise ValueError(
                f"Steering vector {self.name or '<unnamed>'!r} was made for hidden size "
                f"{self.hidden_size} (model {self.model_id or 'unknown'!r}) but this model has "
                f"hidden size {size}. Extract a vector for this model with "
                "`langchain-steer extract` or langchain_steer.extract.extract_vector()."
            )
        total = len(find_layers(model, layer_path))
        bad = [layer for layer in self.layers if not 0 <= layer < total]
        if bad:
            raise ValueError(
                f"Steering vector {self.name or '<unnamed>'!r} steers layers {bad}, but the model "
                f"has only {total} layers."
            )

    # -- persistence ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The JSON-serialisable metadata stored beside the tensors."""
        return {
            "format_version": _FORMAT_VERSION,
            "name": self.name,
            "model_id": self.model_id,
            "hidden_size": self.hidden_size,
            "layers": self.layers,
            "method": self.method,
            "poles": list(self.poles),
            "functional_range": self.functional_range,
            "examples_hash": self.examples_hash,
            "extra": dict(self.extra),
        }

    def save(self, path: str | Path) -> Path:
        """Write the vector to a ``.safetensors`` file (float32 tensors, JSON metadata).

        The file is written next to its destination and renamed into place, so a crash never
        leaves a truncated vector behind.
        """
        from safetensors.torch import save_file

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"layer.{layer}": t.detach().to("cpu", torch.float32).contiguous()
            for layer, t in self.directions.items()
        }
        tmp = target.with_name(f".{target.name}.tmp")
        save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(self.metadata())})
        tmp.replace(target)
        return target

    @classmethod
    def load(cls, path: str | Path, device: Any = None) -> SteeringVector:
        """Read a vector written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a langchain-steer vector, or its metadata is inconsistent.
        """
        from safetensors import safe_open

        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"No steering vector file at {source}")
        try:
            with safe_open(str(source), framework="pt", device="cpu") as handle:
                raw = (handle.metadata() or {}).get(_METADATA_KEY)
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(f"{source} is not a readable safetensors file: {error}") from error
        if raw is None:
            raise ValueError(
                f"{source} has no langchain-steer metadata; was it saved by SteeringVector.save?"
            )
        meta = json.loads(raw)
        directions = {int(key.split(".", 1)[1]): tensor for key, tensor in tensors.items()}
        vector = cls(
            directions=directions,
            name=meta.get("name", ""),
            model_id=meta.get("model_id", ""),
            method=meta.get("method", ""),
            poles=tuple(meta.get("poles", ("negative", "positive"))),
            functional_range=float(meta.get("functional_range", 1.0)),
            examples_hash=meta.get("examples_hash", ""),
            extra=meta.get("extra", {}),
        )
        if (
            meta.get("hidden_size") not in (None, vector.hidden_size)
            or sorted(meta.get("layers", vector.layers)) != vector.layers
        ):
            raise ValueError(f"{source}: metadata does not match the stored tensors.")
        return vector.to(device) if device is not None else vector


def load_vectors(path: str | Path) -> dict[str, SteeringVector]:
    """Load one ``.safetensors`` vector file, or every one in a folder, keyed by each vector's name.

    A vector saved without a name is keyed by its file name (without the suffix).

    Raises:
        FileNotFoundError: the path does not exist, or the folder holds no ``.safetensors`` file.
        ValueError: a file is not a langchain-steer vector.
    """
    source = Path(path)
    files = sorted(source.glob("*.safetensors")) if source.is_dir() else [source]
    if not files:
        raise FileNotFoundError(f"No .safetensors vectors in {source}")
    return {
        vector.name or file.stem: vector for file in files for vector in [SteeringVector.load(file)]
    }
