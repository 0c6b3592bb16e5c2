"""Hooks that add steering vectors to the residual stream, owned by handles and context managers.

The public entry point is :func:`steer`::

    with steer(model, vectors, {"cost": 0.8, "age": -0.5}):
        model.generate(...)

Design rules (see ``docs/engine.md``):

* **Nothing shared.** Each call computes its own per-layer offsets and registers its own hooks (small
  closures). Nothing is stored on modules or in globals, so concurrent callers never see each other's
  steering: serialise or batch calls that share one model, but never mix state.
* **Zero costs nothing.** A dimension at strength 0 is dropped before any hook is made; a layer with
  nothing left to add gets no hook at all, so ``steer(..., {"cost": 0})`` runs the bare model.
* **Signed sum.** Several dimensions add up: the offset at layer ``l`` is
  ``sum_d strength_d * functional_range_d * direction_d[l]`` for symmetric vectors; a two-sided vector
  contributes its negative side (``|strength_d| * negative_range_d * negative_direction_d[l]``) at
  negative strengths (see :mod:`langchain_steer.vectors`).
* **Per-row strengths.** A strength may be a sequence with one value per batch row; the hook then adds
  a different offset to each row (used to batch many users in one ``generate``).
* **Position policy.** ``"all"`` steers every position of every forward pass (prompt and generated
  tokens). ``"generated"`` steers, in each forward pass, only the last position: with the KV cache that
  is the last prompt token in the prefill (whose output picks the first new token) and then every
  generated token, while the prompt's cached keys and values stay unsteered. It assumes the KV cache
  is on (the ``generate`` default); with ``use_cache=False`` earlier generated tokens are recomputed
  unsteered, so use ``"all"`` there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from langchain_steer.layers import find_layers
from langchain_steer.models import model_lock
from langchain_steer.vectors import SteeringVector

__all__ = [
    "MAX_STRENGTH",
    "Positions",
    "SteeringHandle",
    "apply_steering",
    "check_strength",
    "layer_offsets",
    "register_offsets",
    "stack_row_offsets",
    "steer",
]

MAX_STRENGTH = 2.0
"""Hard cap on ``|strength|``. Between 1 and this cap a warning is raised: text usually degrades."""

Positions = Literal["all", "generated"]
Strength = float | Sequence[float] | torch.Tensor


def check_strength(name: str, value: Strength) -> torch.Tensor:
    """Validate one dimension's strength and return it as a float64 tensor (0-D or 1-D).

    Raises:
        ValueError: NaN/inf, or ``|value| > MAX_STRENGTH``; the message names the dimension.
    """
    try:
        tensor = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"Steering strength for {name!r} must be a number or one number per batch row, "
            f"not {value!r}."
        ) from error
    if tensor.dim() > 1:
        raise ValueError(f"Steering strength for {name!r} must be a number or a 1-D sequence.")
    allowed = f"[-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]"
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(
            f"Steering strength for {name!r} must be finite (allowed range {allowed})."
        )
    peak = float(tensor.abs().max()) if tensor.numel() else 0.0
    if peak > MAX_STRENGTH:
        raise ValueError(
            f"Steering strength {peak:g} for {name!r} is outside the allowed range {allowed}. "
            "±1 is the strongest setting that keeps text fluent."
        )
    if peak > 1.0:
        warnings.warn(
            f"Steering strength {peak:g} for {name!r} is beyond ±1, the calibrated fluent range; "
            "expect degraded text.",
            stacklevel=3,
        )
    return tensor


def layer_offsets(
    vectors: Mapping[str, SteeringVector],
    strengths: Mapping[str, Strength],
) -> dict[int, torch.Tensor]:
    """Compute the offset to add at each layer, in float32 on the CPU.

    Returns a mapping layer → tensor of shape ``(hidden,)`` for scalar strengths, or
    ``(batch, hidden)`` when any strength is per row. Layers whose offset would be zero for every
    row are left out.

    Raises:
        ValueError: an unknown dimension, a bad strength, per-row strengths of different lengths,
            or vectors of different hidden sizes.
    """
    rows: int | None = None
    checked: dict[str, torch.Tensor] = {}
    for name, value in strengths.items():
        if name not in vectors:
            known = ", ".join(sorted(vectors)) or "none"
            raise ValueError(f"Unknown steering dimension {name!r}; known dimensions: {known}.")
        tensor = check_strength(name, value)
        if tensor.dim() == 1:
            if rows is not None and tensor.numel() != rows:
                raise ValueError(
                    f"Per-row strengths disagree on the batch size: {name!r} has {tensor.numel()} "
                    f"values, another dimension has {rows}."
                )
            rows = tensor.numel()
        if bool((tensor != 0).any()):
            checked[name] = tensor
    sizes = {vectors[name].hidden_size for name in checked}
    if len(sizes) > 1:
        raise ValueError(f"Steering vectors disagree on the hidden size: {sorted(sizes)}.")
    offsets: dict[int, torch.Tensor] = {}

    def add(layer: int, term: torch.Tensor) -> None:
        offsets[layer] = term if layer not in offsets else offsets[layer] + term

    for name, tensor in checked.items():
        vector = vectors[name]
        # Per row: (batch, 1) * (hidden,) -> (batch, hidden); scalar: 0-D * (hidden,) -> (hidden,).
        column = tensor.unsqueeze(-1) if tensor.dim() == 1 else tensor
        if vector.symmetric:
            scale = column * vector.functional_range
            for layer, direction in vector.directions.items():
                add(layer, scale.to(torch.float32) * direction.detach().to("cpu", torch.float32))
            continue
        # Two-sided: positive strengths use the positive side, negative ones the negative side.
        negative, negative_range = vector.negative_side
        for side, scale in (
            (vector.directions, column.clamp(min=0) * vector.functional_range),
            (negative, (-column).clamp(min=0) * negative_range),
        ):
            if not bool((scale != 0).any()):
                continue
            for layer, direction in side.items():
                add(layer, scale.to(torch.float32) * direction.detach().to("cpu", torch.float32))
    if rows is not None:
        # A scalar dimension mixed with per-row ones applies to every row.
        offsets = {k: v.expand(rows, -1) if v.dim() == 1 else v for k, v in offsets.items()}
    return {layer: v for layer, v in offsets.items() if bool((v != 0).any())}


def _make_hook(offset: torch.Tensor, positions: Positions) -> Callable[..., Any]:
    """Build a forward hook that adds ``offset`` to a decoder block's hidden-state output."""
    per_row = offset.dim() == 2
    added = offset.unsqueeze(1) if per_row else offset  # (batch, 1, hidden) or (hidden,)

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        if per_row and hidden.shape[0] != added.shape[0]:
            raise ValueError(
                f"Per-row steering was set for {added.shape[0]} rows but the forward pass has "
                f"{hidden.shape[0]} (beam search and num_return_sequences multiply rows; give one "
                "strength per expanded row)."
            )
        if positions == "all":
            hidden = hidden + added
        else:
            hidden = hidden.clone()
            hidden[:, -1, :] += added.squeeze(1) if per_row else added
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return hook


class SteeringHandle:
    """Owns the hooks of one steering session; :meth:`remove` takes them all off.

    Use it directly when a ``with`` block does not fit (e.g. steering across callbacks)::

        handle = apply_steering(model, vectors, {"cost": 1.0})
        try:
            model.generate(...)
        finally:
            handle.remove()
    """

    def __init__(self, handles: list[RemovableHandle], layers: list[int]) -> None:
        self._handles = handles
        self.layers = layers
        """Indices of the layers that got a hook (empty when every strength was zero)."""

    @property
    def active(self) -> bool:
        """Whether any hook is still registered."""
        return bool(self._handles)

    def remove(self) -> None:
        """Remove every hook; safe to call twice."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> SteeringHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def apply_steering(
    model: nn.Module,
    vectors: Mapping[str, SteeringVector],
    strengths: Mapping[str, Strength],
    *,
    positions: Positions = "all",
    layer_path: str | None = None,
    allow_foreign: bool = False,
) -> SteeringHandle:
    """Register steering hooks on ``model`` and return the handle that owns them.

    Args:
        model: a HuggingFace causal LM.
        vectors: dimension name → vector.
        strengths: dimension name → strength (a fraction of the vector's functional range), or one
            strength per batch row. Dimensions left out are not steered.
        positions: ``"all"`` or ``"generated"`` (see the module docstring).
        layer_path: explicit path to the decoder blocks, for architectures discovery misses.
        allow_foreign: use a vector whose passport names another model, with a warning
            (:meth:`~langchain_steer.vectors.SteeringVector.validate_for`).

    Raises:
        ValueError: unknown dimension, bad strength, or a vector that does not fit the model (a
            :class:`~langchain_steer.passport.ForeignVectorError` when its passport names another model).
    """
    _check_positions(positions)
    for name in strengths:
        if name in vectors:
            vectors[name].validate_for(model, layer_path, allow_foreign=allow_foreign)
    return register_offsets(
        model, layer_offsets(vectors, strengths), positions=positions, layer_path=layer_path
    )


def _check_positions(positions: str) -> None:
    if positions not in ("all", "generated"):
        raise ValueError(f"positions must be 'all' or 'generated', not {positions!r}.")


def stack_row_offsets(rows: Sequence[Mapping[int, torch.Tensor]]) -> dict[int, torch.Tensor]:
    """Stack per-request offsets into per-row offsets for one batch.

    Each element of ``rows`` is what :func:`layer_offsets` returns for one request with scalar strengths
    (layer → ``(hidden,)``). The result maps every layer any row steers to a ``(len(rows), hidden)``
    tensor, with zeros for the rows that leave that layer alone. Rows may come from different vector
    sets, as long as they share the hidden size.
    """
    layers = sorted({layer for row in rows for layer in row})
    stacked: dict[int, torch.Tensor] = {}
    for layer in layers:
        example = next(row[layer] for row in rows if layer in row)
        zeros = torch.zeros_like(example)
        stacked[layer] = torch.stack([row.get(layer, zeros) for row in rows])
    return stacked


def register_offsets(
    model: nn.Module,
    offsets: Mapping[int, torch.Tensor],
    *,
    positions: Positions = "all",
    layer_path: str | None = None,
) -> SteeringHandle:
    """Register one hook per layer that adds a precomputed offset, and return the handle that owns them.

    This is the low-level half of :func:`apply_steering`, for callers that combine offsets themselves (the
    batch decoder stacks one row per request with :func:`stack_row_offsets`).

    Args:
        model: a HuggingFace causal LM.
        offsets: layer index → ``(hidden,)`` (every row) or ``(batch, hidden)`` (one row each).
        positions: ``"all"`` or ``"generated"`` (see the module docstring).
        layer_path: explicit path to the decoder blocks.
    """
    _check_positions(positions)
    if not offsets:
        return SteeringHandle([], [])
    blocks = find_layers(model, layer_path)
    handles: list[RemovableHandle] = []
    try:
        for layer, offset in offsets.items():
            block = blocks[layer]
            parameter = next(block.parameters(), None)
            if parameter is not None:
                # Cast once here, not on every forward pass; each block may sit on its own device.
                offset = offset.to(device=parameter.device, dtype=parameter.dtype)
            handles.append(block.register_forward_hook(_make_hook(offset, positions)))
    except BaseException:
        for handle in handles:
            handle.remove()
        raise
    return SteeringHandle(handles, sorted(offsets))


@contextmanager
def steer(
    model: nn.Module,
    vectors: Mapping[str, SteeringVector],
    strengths: Mapping[str, Strength],
    *,
    positions: Positions = "all",
    layer_path: str | None = None,
    allow_foreign: bool = False,
) -> Iterator[SteeringHandle]:
    """Steer every forward pass of ``model`` inside the ``with`` block.

    On exit, normal or by exception, every hook this call added is removed. See
    :func:`apply_steering` for the arguments.

    The block holds :func:`~langchain_steer.models.model_lock` from start to end, so it never runs in the
    middle of a :class:`~langchain_steer.chat_model.SteeredChatModel` batch on the same model, and no batch
    runs inside it: a serving chat model waits for the block to end. **Do not call a chat model on the
    same model inside the block**; that call would wait for the block, so it raises a ``RuntimeError``.
    :func:`apply_steering` (the handle form) takes no lock: its caller owns the serialisation.

    Example:
        >>> with steer(model, builtin_vectors(), {"cost": 1.0}):  # doctest: +SKIP
        ...     out = model.generate(**inputs, max_new_tokens=40)
    """
    with model_lock(model):
        handle = apply_steering(
            model, vectors, strengths, positions=positions, layer_path=layer_path,
            allow_foreign=allow_foreign,
        )  # fmt: skip
        try:
            yield handle
        finally:
            handle.remove()
