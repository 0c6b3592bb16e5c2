"""``SteeringVector``: one dimension's steering offsets per layer, with the metadata that makes them reusable.

A vector is an immutable value: arithmetic and :meth:`SteeringVector.to` return new vectors. **Two poles.** A
vector holds, per layer, the offset that moves the model towards its positive pole (``directions``) and,
optionally, a separate one towards its negative pole (``negative_directions``). When the negative side is left
out the vector is *symmetric*: strength ``-s`` adds exactly the negative of strength ``+s`` (the classic
mean-difference vector). A *two-sided* vector, as extraction makes by default, steers each pole towards that
pole's own examples, which on small models reads much more clearly than pushing away from the opposite pole
(see ``docs/eval.md``).

**Strength unit.** At strength ``s > 0`` a hook adds ``s * functional_range * directions[layer]`` to the
output of each layer; at ``s < 0`` it adds ``|s| * negative_range * negative_directions[layer]``.
``functional_range`` and ``negative_range`` are the strongest settings that keep the text fluent, each
calibrated on its own side (:func:`langchain_steer.eval.range_calibration.calibrate_range`), so ``±1`` is the
strongest fluent setting towards either pole. Extraction scales directions so that their norm at the
median steered layer is 1: a range is then the norm added at a typical steered layer.
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
from langchain_steer.passport import ForeignVectorError, Passport

__all__ = ["ForeignVectorError", "SteeringVector"]

_FORMAT_VERSION = 3  # 3 added the passport; 1 and 2 files load with passport None
_READABLE_VERSIONS = (1, 2, 3)
_METADATA_KEY = "langchain_steer"
_POSITIVE_KEY = "layer"
_NEGATIVE_KEY = "negative"


def _frozen(directions: Mapping[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    return {int(layer): tensor.detach() for layer, tensor in sorted(directions.items())}


def _check_range(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value}.")


@dataclasses.dataclass(frozen=True, eq=False)
class SteeringVector:
    """A steering direction for a set of decoder layers of one model family.

    Attributes:
        directions: layer index → tensor of shape ``(hidden_size,)``, added (times the strength and
            ``functional_range``) at positive strengths.
        name: the dimension, e.g. ``"cost"``.
        model_id: the model the vector was extracted from (informative; the hard check is the
            hidden size).
        method: how it was made: ``"mean_diff"``, ``"pca"``, ``"probe"``, ``"pole_mean"`` (two-sided,
            each pole against an anchor), or ``"combined"``.
        poles: ``(negative, positive)`` pole names, e.g. ``("budget", "luxury")``.
        functional_range: norm scale at strength +1 (and at -1 unless ``negative_range`` is set).
        examples_hash: SHA-256 of the examples the vector was extracted from.
        extra: free-form JSON-serialisable details (probe accuracies, calibration sweep...).
        negative_directions: layer index → tensor added (times ``|strength|`` and ``negative_range``)
            at negative strengths. ``None`` makes the vector symmetric: ``-directions``.
        negative_range: norm scale at strength -1; ``None`` means ``functional_range``.
        passport: what the vector was made for (:class:`~langchain_steer.passport.Passport`), filled by
            extraction and checked by :meth:`validate_for`; ``None`` for files older than format 3.
    """

    directions: Mapping[int, torch.Tensor]
    name: str = ""
    model_id: str = ""
    method: str = "mean_diff"
    poles: tuple[str, str] = ("negative", "positive")
    functional_range: float = 1.0
    examples_hash: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    negative_directions: Mapping[int, torch.Tensor] | None = None
    negative_range: float | None = None
    passport: Passport | None = None

    def __post_init__(self) -> None:
        if not self.directions:
            raise ValueError("A SteeringVector needs at least one layer direction.")
        directions = _frozen(self.directions)
        negative = None if self.negative_directions is None else _frozen(self.negative_directions)
        tensors = [*directions.values(), *(negative or {}).values()]
        sizes = {tuple(t.shape) for t in tensors}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(
                f"Every direction must be a 1-D tensor of one size; got shapes {sizes}."
            )
        if negative is not None and not negative:
            raise ValueError("negative_directions, when given, needs at least one layer.")
        for side, table in (("directions", directions), ("negative_directions", negative or {})):
            bad = [layer for layer, t in table.items() if not bool(torch.isfinite(t).all())]
            if bad:
                # A NaN would turn every steered activation, and so every reply, into NaN.
                raise ValueError(f"{side} of layers {sorted(bad)} hold NaN or infinite values.")
        _check_range("functional_range", self.functional_range)
        if self.negative_range is not None:
            _check_range("negative_range", self.negative_range)
        object.__setattr__(self, "directions", directions)
        object.__setattr__(self, "negative_directions", negative)
        object.__setattr__(self, "poles", tuple(self.poles))
        object.__setattr__(self, "extra", dict(self.extra))

    # -- derived properties -------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        """Sorted layer indices this vector steers (on either side)."""
        return sorted(set(self.directions) | set(self.negative_directions or {}))

    @property
    def symmetric(self) -> bool:
        """Whether strength ``-s`` adds exactly the negative of strength ``+s``."""
        return self.negative_directions is None and self.negative_range is None

    @property
    def negative_side(self) -> tuple[dict[int, torch.Tensor], float]:
        """``(directions, range)`` applied at negative strengths, resolved for symmetric vectors."""
        directions = (
            {k: -v for k, v in self.directions.items()}
            if self.negative_directions is None
            else dict(self.negative_directions)
        )
        scale = self.functional_range if self.negative_range is None else self.negative_range
        return directions, scale

    def offsets(self, strength: float) -> dict[int, torch.Tensor]:
        """The tensor each layer gets added at ``strength`` (no check of the strength's size)."""
        if strength >= 0:
            directions, scale = dict(self.directions), self.functional_range
        else:
            directions, scale = self.negative_side
        factor = abs(float(strength)) * scale
        return {layer: direction * factor for layer, direction in directions.items()}

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

    def _map(self, fn: Any) -> dict[str, Any]:
        """Apply ``fn`` to every tensor of both sides: the ``directions`` keyword arguments of a copy."""
        changes: dict[str, Any] = {"directions": {k: fn(v) for k, v in self.directions.items()}}
        if self.negative_directions is not None:
            changes["negative_directions"] = {k: fn(v) for k, v in self.negative_directions.items()}
        return changes

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> SteeringVector:
        """Return a copy with every direction moved to ``device`` and/or cast to ``dtype``."""
        return self._replace(**self._map(lambda v: v.to(device=device, dtype=dtype)))

    def __mul__(self, factor: float) -> SteeringVector:
        """Scale what the vector adds at every strength, on both sides."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        if not math.isfinite(factor):
            raise ValueError(f"Cannot scale a SteeringVector by {factor}.")
        return self._replace(**self._map(lambda v: v * factor))

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> SteeringVector:
        if isinstance(divisor, bool) or not isinstance(divisor, (int, float)) or divisor == 0:
            return NotImplemented
        return self * (1.0 / divisor)

    def __neg__(self) -> SteeringVector:
        """The additive inverse: ``(-v)`` at strength ``s`` adds minus what ``v`` adds, so ``v - v`` is zero.

        For a symmetric vector that is the same as swapping the poles, and the pole names are swapped.
        """
        return self._replace(**self._map(lambda v: -v), poles=(self.poles[1], self.poles[0]))

    def __add__(self, other: object) -> SteeringVector:
        """Sum two vectors layer by layer (a layer missing from one side counts as zero).

        ``(a + b)`` at strength ``s`` adds exactly what ``a`` and ``b`` at strength ``s`` would add
        together. Two symmetric vectors with equal ``functional_range`` keep that range; otherwise each
        side's range is folded into its directions and the sum gets ranges of 1.
        """
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.hidden_size != self.hidden_size:
            raise ValueError(
                f"Cannot add vectors of hidden size {self.hidden_size} and {other.hidden_size}."
            )
        if self.passport and other.passport and self.passport.mismatches(other.passport):
            differ = "; ".join(self.passport.mismatches(other.passport))
            raise ForeignVectorError(f"Cannot add vectors made for different models: {differ}.")
        same = self.name == other.name
        common: dict[str, Any] = {
            "name": self.name if same else f"{self.name}+{other.name}",
            "method": self.method if self.method == other.method else "combined",
            "poles": self.poles if self.poles == other.poles else ("negative", "positive"),
            "examples_hash": self.examples_hash if same else "",
            "extra": {},
            "passport": self.passport or other.passport,
        }
        if (
            self.symmetric
            and other.symmetric
            and math.isclose(self.functional_range, other.functional_range)
        ):
            directions = _layer_sum([(self.directions, 1.0), (other.directions, 1.0)])
            return self._replace(directions=directions, **common)
        positive = _layer_sum(
            [(self.directions, self.functional_range), (other.directions, other.functional_range)]
        )
        negative = _layer_sum([self.negative_side, other.negative_side])
        return self._replace(
            directions=positive,
            negative_directions=negative,
            functional_range=1.0,
            negative_range=1.0,
            **common,
        )

    def __sub__(self, other: object) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        difference = self + (-other)
        return dataclasses.replace(difference, poles=self.poles, name=self.name)

    def __repr__(self) -> str:
        ranges = f"functional_range={self.functional_range:g}"
        if not self.symmetric:
            ranges += f", negative_range={self.negative_side[1]:g}, two-sided"
        return (
            f"SteeringVector(name={self.name!r}, model_id={self.model_id!r}, method={self.method!r}, "
            f"poles={self.poles}, layers={self.layers}, hidden_size={self.hidden_size}, {ranges})"
        )

    # -- checks ---------------------------------------------------------------------------------
    def validate_for(
        self,
        model: nn.Module,
        layer_path: str | None = None,
        tokenizer: Any = None,
        *,
        allow_foreign: bool = False,
    ) -> None:
        """Check that this vector fits ``model``: its passport, hidden size, and layers that exist.

        With a passport, the model's architecture, layer count, hook point and layer numbering must match,
        and so must the tokenizer's and chat template's fingerprints when ``tokenizer`` is given.
        ``allow_foreign=True`` turns a passport mismatch into a warning, for a vector you know transfers
        (a fine-tune of the same base model, say).

        Raises:
            ForeignVectorError: the passport names another model (the message lists what differs).
            ValueError: with the vector's name, what it expects and what the model has.
        """
        if self.passport is not None:
            self.passport.check(
                model, tokenizer, layer_path=layer_path, vector=self.name, allow_foreign=allow_foreign
            )
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
            "negative_range": self.negative_range,
            "two_sided": self.negative_directions is not None,
            "examples_hash": self.examples_hash,
            "extra": dict(self.extra),
            "passport": self.passport.to_dict() if self.passport is not None else None,
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """The stored tensors: ``layer.<n>`` (and ``negative.<n>``), float32 on the CPU."""
        tensors = {
            f"{_POSITIVE_KEY}.{layer}": t.detach().to("cpu", torch.float32).contiguous()
            for layer, t in self.directions.items()
        }
        for layer, t in (self.negative_directions or {}).items():
            tensors[f"{_NEGATIVE_KEY}.{layer}"] = t.detach().to("cpu", torch.float32).contiguous()
        return tensors

    def export_gguf(self, path: str | Path, strength: float = 1.0) -> Path:
        """Write a llama.cpp control vector at ``strength`` (:func:`langchain_steer.interop.export_gguf`)."""
        from langchain_steer.interop import export_gguf

        return export_gguf(self, path, strength)

    @classmethod
    def import_gguf(cls, path: str | Path, model: Any = None, **kwargs: Any) -> SteeringVector:
        """Read a llama.cpp control vector, repeng's too (:func:`langchain_steer.interop.import_gguf`)."""
        from langchain_steer.interop import import_gguf

        return import_gguf(path, model, **kwargs)

    def save(self, path: str | Path) -> Path:
        """Write the vector to a ``.safetensors`` file (float32 tensors, JSON metadata).

        The file is written next to its destination and renamed into place, so a crash never
        leaves a truncated vector behind.
        """
        from safetensors.torch import save_file

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        save_file(self.tensors(), str(tmp), metadata={_METADATA_KEY: json.dumps(self.metadata())})
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
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{source}: the langchain-steer metadata is not JSON: {error}"
            ) from error
        version = meta.get("format_version", 1)
        if version not in _READABLE_VERSIONS:
            raise ValueError(
                f"{source} has vector format version {version!r}; this langchain-steer reads versions "
                f"{', '.join(map(str, _READABLE_VERSIONS))}. Upgrade langchain-steer to read it."
            )
        vector = cls.from_parts(meta, tensors, source)
        return vector.to(device) if device is not None else vector

    @classmethod
    def from_parts(
        cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], source: Any
    ) -> SteeringVector:
        """Build a vector from its metadata and its ``layer.<n>`` / ``negative.<n>`` tensors.

        ``source`` names where they came from, in error messages.

        Raises:
            ValueError: unexpected tensor names, no direction, or metadata that does not match the tensors.
        """
        sides: dict[str, dict[int, torch.Tensor]] = {_POSITIVE_KEY: {}, _NEGATIVE_KEY: {}}
        for key, tensor in tensors.items():
            side, _, index = key.partition(".")
            if side not in sides or not index.isdigit():
                raise ValueError(
                    f"{source}: unexpected tensor {key!r}; a vector file holds 'layer.<n>' and "
                    "'negative.<n>' tensors only."
                )
            sides[side][int(index)] = tensor
        if not sides[_POSITIVE_KEY]:
            raise ValueError(f"{source}: the file holds no 'layer.<n>' direction.")
        negative_range = meta.get("negative_range")
        try:
            vector = cls(
                directions=sides[_POSITIVE_KEY],
                negative_directions=sides[_NEGATIVE_KEY] or None,
                name=meta.get("name", ""),
                model_id=meta.get("model_id", ""),
                method=meta.get("method", ""),
                poles=tuple(meta.get("poles", ("negative", "positive"))),
                functional_range=float(meta.get("functional_range", 1.0)),
                negative_range=None if negative_range is None else float(negative_range),
                examples_hash=meta.get("examples_hash", ""),
                extra=meta.get("extra", {}),
                passport=Passport.from_dict(meta["passport"]) if meta.get("passport") else None,
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error
        if (
            meta.get("hidden_size") not in (None, vector.hidden_size)
            or sorted(meta.get("layers", vector.layers)) != vector.layers
            or (vector.passport is not None and vector.passport.hidden_size != vector.hidden_size)
        ):
            raise ValueError(f"{source}: metadata does not match the stored tensors.")
        return vector


def _layer_sum(parts: list[tuple[Mapping[int, torch.Tensor], float]]) -> dict[int, torch.Tensor]:
    """Sum ``scale * directions`` over ``parts`` layer by layer; a missing layer counts as zero."""
    total: dict[int, torch.Tensor] = {}
    for directions, scale in parts:
        for layer, tensor in directions.items():
            part = tensor * scale
            total[layer] = part if layer not in total else total[layer] + part.to(total[layer])
    return dict(sorted(total.items()))
