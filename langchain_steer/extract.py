"""Extract steering vectors from contrastive examples.

The recipe (after Bo et al. 2025 and Rimsky et al.'s CAA; what wins on the demo model is measured in
``docs/eval.md``):

1. Render each example as a chat (an optional system prompt, the user's request, then an assistant reply
   written at one pole of the preference: "budget" or "luxury" answers to the same request).
2. Run the model and average each decoder block's output over the **reply tokens** only.
3. Choose the layers: by default every layer in a band of depth (55 % to 80 %), or the ``top_k`` layers of
   that band by cross-validated probe accuracy, or explicit ``layers``.
4. On those layers take a direction:

   * ``pole_mean`` (default, **two-sided**): each pole's mean minus the mean of an *anchor* set of replies,
     e.g. replies of every built-in dimension (:func:`langchain_steer.dimensions.reference_examples`).
     Strength ``+s`` then moves towards the positive pole's examples and ``-s`` towards the negative pole's,
     instead of away from the opposite pole;
   * ``mean_diff`` (difference of the pole means, CAA), ``pca`` (first principal component of the pooled
     activations) or ``probe`` (the logistic-regression normal, the paper's method): symmetric, oriented
     towards the positive pole.

5. Weight each layer's direction by the typical residual-stream norm at that layer (``layer_weights=
   "residual"``), normalised so the median steered layer has norm 1: deep layers, whose activations are
   larger, get proportionally larger offsets.

:func:`langchain_steer.eval.range_calibration.calibrate_range` then sets the vector's ranges from text the
steered model writes. :mod:`langchain_steer.disentangle` removes what one dimension shares with others.

Everything is deterministic (eval mode, no sampling, fixed folds) and batched, with progress bars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from langchain_steer.dimensions.examples import Example
from langchain_steer.layers import find_layers, hidden_size, resolve_layer_indices
from langchain_steer.models import model_lock
from langchain_steer.passport import Passport
from langchain_steer.prompts import render_example
from langchain_steer.tensors import chunked, model_device, pad_right
from langchain_steer.vectors import SteeringVector

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BAND",
    "Anchor",
    "Method",
    "collect_activations",
    "examples_hash",
    "extract_vector",
    "layer_band",
    "probe_accuracies",
]

Method = Literal["pole_mean", "mean_diff", "pca", "probe"]
LayerWeights = Literal["residual", "unit"]
MIN_EXAMPLES_PER_POLE = 8
MAX_IMBALANCE = 2.0
DEFAULT_BAND: tuple[float, float] = (0.55, 0.8)
"""Depth band steered by default, as fractions of the layer count (layers 16 to 24 of the demo model's 30)."""


def examples_hash(negative: Sequence[Example], positive: Sequence[Example]) -> str:
    """SHA-256 of the examples, recorded in a vector so its provenance can be checked."""
    payload = json.dumps(
        [[dataclasses.astuple(e) for e in negative], [dataclasses.astuple(e) for e in positive]],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    system: str | None = None,
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
    desc: str = "activations",
    token_norms: list[list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """Mean output of every decoder block over each example's reply tokens.

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        examples: the examples to run.
        system: an optional system prompt, rendered before each request.
        batch_size: examples per forward pass.
        progress: show a progress bar.
        layer_path: explicit path to the decoder blocks.
        desc: the progress bar's label.
        token_norms: when a list is given, one list per layer is appended to it holding the L2 norm of every
            real token's output after the first (the first position is often a huge "attention sink"), for
            residual-norm statistics.

    Returns:
        float32 CPU tensor of shape ``(num_layers, len(examples), hidden_size)``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    blocks = find_layers(model, layer_path)
    rendered = [render_example(tokenizer, e, system) for e in examples]
    device = model_device(model)
    out = torch.zeros(len(blocks), len(examples), hidden_size(model), dtype=torch.float32)
    if token_norms is not None:
        token_norms.extend([] for _ in blocks)
    index = 0
    for batch in tqdm(chunked(rendered, batch_size), desc=desc, disable=not progress, leave=False):
        ids, mask = pad_right(tokenizer, [r[0] for r in batch], device)
        reply = torch.zeros_like(mask, dtype=torch.float32)
        for i, (row, start) in enumerate(batch):
            reply[i, start : len(row)] = 1.0
        weights = (reply / reply.sum(1, keepdim=True)).unsqueeze(-1)
        real = mask.bool().clone()
        real[:, 0] = False
        rows = slice(index, index + len(batch))
        # Per pass, not per call: a serving chat model on the same model gets its turn between passes,
        # and no pass records (or runs under) another caller's steering hooks.
        with model_lock(model):
            handles = [
                block.register_forward_hook(_recorder(out, layer, rows, weights, real, token_norms))
                for layer, block in enumerate(blocks)
            ]
            try:
                model(input_ids=ids, attention_mask=mask, use_cache=False)
            finally:
                for handle in handles:
                    handle.remove()
        index += len(batch)
    return out


def _recorder(
    out: torch.Tensor,
    layer: int,
    rows: slice,
    weights: torch.Tensor,
    real: torch.Tensor,
    token_norms: list[list[torch.Tensor]] | None,
) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        pooled = (hidden.float() * weights.to(hidden.device)).sum(1)
        out[layer, rows] = pooled.cpu()
        if token_norms is not None:
            token_norms[layer].append(hidden[real.to(hidden.device)].float().norm(dim=-1).cpu())

    return hook


def layer_band(total: int, band: tuple[float, float] = DEFAULT_BAND) -> list[int]:
    """The layers from ``round(band[0] * total)`` to ``round(band[1] * total)``, both included.

    Raises:
        ValueError: a band outside ``0 <= start <= end <= 1``.
    """
    start, end = band
    if not 0 <= start <= end <= 1:
        raise ValueError(f"A layer band is (start, end) with 0 <= start <= end <= 1, not {band}.")
    lo = min(total - 1, round(start * total))
    hi = min(total - 1, max(lo, round(end * total)))
    return list(range(lo, hi + 1))


def _check_balance(negative: Sequence[Example], positive: Sequence[Example]) -> None:
    n_neg, n_pos = len(negative), len(positive)
    if min(n_neg, n_pos) < MIN_EXAMPLES_PER_POLE:
        raise ValueError(
            f"Too few examples: {n_neg} negative and {n_pos} positive; extraction needs at least "
            f"{MIN_EXAMPLES_PER_POLE} per pole (60 or more gives stable directions)."
        )
    if max(n_neg, n_pos) / min(n_neg, n_pos) > MAX_IMBALANCE:
        raise ValueError(
            f"Unbalanced examples: {n_neg} negative against {n_pos} positive. Keep the poles within "
            f"{MAX_IMBALANCE:g}:1 of each other, ideally paired replies to the same prompts."
        )


def _fit_probe(
    x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2, steps: int = 100
) -> torch.Tensor:
    """L2-regularised logistic regression; returns ``[w..., b]`` (float64, deterministic LBFGS)."""
    params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([params], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ params[:-1] + params[-1]
        loss = (
            nn.functional.binary_cross_entropy_with_logits(logits, y)
            + l2 * params[:-1].square().sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return params.detach()


def _standardise(
    neg: torch.Tensor, pos: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.cat([neg, pos]).double()
    center = x.mean(0)
    scale = (x - center).norm(dim=1).mean().clamp_min(1e-12)
    y = torch.cat([torch.zeros(len(neg)), torch.ones(len(pos))]).double()
    return (x - center) / scale, y, center


def probe_accuracies(neg: torch.Tensor, pos: torch.Tensor, folds: int = 5) -> list[float]:
    """Cross-validated logistic-probe accuracy for each layer.

    Args:
        neg: ``(num_layers, n_neg, hidden)`` activations of the negative pole.
        pos: ``(num_layers, n_pos, hidden)`` activations of the positive pole.
        folds: number of folds; example ``i`` of each pole goes to fold ``i % folds``, so paired
            replies stay in the same fold.
    """
    accuracies = []
    for layer in range(neg.shape[0]):
        x, y, _ = _standardise(neg[layer], pos[layer])
        fold = torch.cat([torch.arange(len(neg[layer])), torch.arange(len(pos[layer]))]) % folds
        correct = 0
        for k in range(folds):
            train, test = fold != k, fold == k
            params = _fit_probe(x[train], y[train])
            predicted = (x[test] @ params[:-1] + params[-1]) > 0
            correct += int((predicted == y[test].bool()).sum())
        accuracies.append(correct / len(y))
    return accuracies


def _direction(neg: torch.Tensor, pos: torch.Tensor, method: Method) -> torch.Tensor:
    mean_diff = pos.double().mean(0) - neg.double().mean(0)
    if method == "mean_diff":
        direction = mean_diff
    elif method == "pca":
        pooled = torch.cat([neg, pos]).double()
        _, _, vh = torch.linalg.svd(pooled - pooled.mean(0), full_matrices=False)
        direction = vh[0]
    elif method == "probe":
        x, y, _ = _standardise(neg, pos)
        direction = _fit_probe(x, y)[:-1]
    else:
        raise ValueError(
            f"Unknown method {method!r}; use 'pole_mean', 'mean_diff', 'pca' or 'probe'."
        )
    if torch.dot(direction, mean_diff) < 0:  # orient towards the positive pole
        direction = -direction
    return _unit(direction)


def _unit(direction: torch.Tensor) -> torch.Tensor:
    norm = direction.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("The two poles give identical activations; no direction can be extracted.")
    return (direction / norm).float()


Anchor = Sequence[Example] | torch.Tensor
"""What ``pole_mean`` measures each pole against: examples to run, or their mean activations as a
``(num_layers, hidden_size)`` tensor (compute it once with :func:`collect_activations` ``.mean(1)`` to extract
several dimensions against the same anchor)."""


def extract_vector(
    model: nn.Module,
    tokenizer: Any,
    negative: Sequence[Example],
    positive: Sequence[Example],
    *,
    name: str = "",
    poles: tuple[str, str] = ("negative", "positive"),
    method: Method = "pole_mean",
    anchor: Anchor | None = None,
    system: str | None = None,
    layers: Sequence[int] | None = None,
    band: tuple[float, float] = DEFAULT_BAND,
    top_k: int | None = None,
    layer_weights: LayerWeights = "residual",
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
    functional_range: float = 1.0,
) -> SteeringVector:
    """Extract a steering vector from contrastive examples.

    Args:
        model: the causal LM to steer later.
        tokenizer: its tokenizer.
        negative: replies at the negative pole (e.g. budget).
        positive: replies at the positive pole (e.g. luxury); ideally answers to the same prompts.
        name: dimension name stored in the vector.
        poles: ``(negative, positive)`` pole names.
        method: ``"pole_mean"`` (two-sided, needs ``anchor``), ``"mean_diff"``, ``"pca"`` or ``"probe"``.
        anchor: for ``pole_mean``: replies to measure each pole against, or their mean activations. A
            broad set of ordinary replies works best; the built-in dimensions' replies are
            :func:`langchain_steer.dimensions.reference_examples`. Replies are run through the model once
            and cached (:func:`langchain_steer.anchors.anchor_activations`). Ignored by the symmetric methods.
        system: a system prompt to render before every request, usually the one the model will be steered
            under (the demo uses :data:`langchain_steer.dimensions.PLANNER_SYSTEM_PROMPT`).
        layers: explicit layer indices (negative ones count from the end); skips layer selection.
        band: the fraction of depth ``(start, end)`` to steer when ``layers`` is not given.
        top_k: keep only this many layers of the band, by cross-validated probe accuracy (ties broken by the
            separation of the pole means relative to their spread). ``None`` keeps the whole band.
        layer_weights: ``"residual"`` scales each layer's direction by the median residual-stream norm there
            (relative to the median steered layer); ``"unit"`` leaves every direction at norm 1.
        batch_size: examples per forward pass.
        progress: show tqdm progress bars.
        layer_path: explicit path to the decoder blocks.
        functional_range: the norm at strength ±1 until :func:`calibrate_range` sets it.

    Raises:
        ValueError: too few or unbalanced examples, a bad layer index or band, an unknown method, or
            ``pole_mean`` without an anchor.
    """
    _check_balance(negative, positive)
    if method not in ("pole_mean", "mean_diff", "pca", "probe"):
        raise ValueError(
            f"Unknown method {method!r}; use 'pole_mean', 'mean_diff', 'pca' or 'probe'."
        )
    if layer_weights not in ("residual", "unit"):
        raise ValueError(f"layer_weights must be 'residual' or 'unit', not {layer_weights!r}.")
    if method == "pole_mean" and anchor is None:
        raise ValueError(
            "method='pole_mean' measures each pole against anchor replies: pass anchor="
            "langchain_steer.dimensions.reference_examples() (or your own ordinary replies), or use a "
            "symmetric method such as method='mean_diff'."
        )
    total = len(find_layers(model, layer_path))
    common: dict[str, Any] = {
        "system": system,
        "batch_size": batch_size,
        "progress": progress,
        "layer_path": layer_path,
    }
    norms: list[list[torch.Tensor]] = []
    acts_neg = collect_activations(
        model,
        tokenizer,
        negative,
        desc=f"{name or 'vector'}: {poles[0]}",
        token_norms=norms,
        **common,
    )
    acts_pos = collect_activations(
        model,
        tokenizer,
        positive,
        desc=f"{name or 'vector'}: {poles[1]}",
        token_norms=norms,
        **common,
    )
    accuracies = probe_accuracies(acts_neg, acts_pos)
    if layers is not None:
        chosen = resolve_layer_indices(layers, total)
    else:
        candidates = layer_band(total, band)
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k must be at least 1 or None, not {top_k}.")
            separation = _separation(acts_neg, acts_pos)
            ranked = sorted(candidates, key=lambda i: (-accuracies[i], -separation[i], i))
            chosen = sorted(ranked[:top_k])
        else:
            chosen = candidates
    # Each pole's activations were recorded into their own per-layer lists; pool both per layer.
    per_layer = [torch.cat(norms[i] + norms[i + total]) for i in range(total)]
    residual = {i: float(per_layer[i].median()) for i in chosen}
    median = sorted(residual.values())[len(chosen) // 2]
    weight = {
        i: (residual[i] / median if layer_weights == "residual" and median > 0 else 1.0)
        for i in chosen
    }
    negative_directions: dict[int, torch.Tensor] | None = None
    if method == "pole_mean":
        assert anchor is not None  # checked above
        from langchain_steer.anchors import anchor_activations  # it builds on collect_activations

        centre = (
            anchor.float()
            if isinstance(anchor, torch.Tensor)
            else anchor_activations(model, tokenizer, anchor, **common)
        )
        if tuple(centre.shape) != (total, acts_pos.shape[-1]):
            raise ValueError(
                f"The anchor's mean activations must have shape {(total, acts_pos.shape[-1])}, "
                f"not {tuple(centre.shape)}."
            )
        directions = {
            i: _unit(acts_pos[i].double().mean(0) - centre[i].double()) * weight[i] for i in chosen
        }
        negative_directions = {
            i: _unit(acts_neg[i].double().mean(0) - centre[i].double()) * weight[i] for i in chosen
        }
    else:
        directions = {i: _direction(acts_neg[i], acts_pos[i], method) * weight[i] for i in chosen}
    return SteeringVector(
        directions=directions,
        negative_directions=negative_directions,
        name=name,
        model_id=str(getattr(getattr(model, "config", None), "name_or_path", "") or ""),
        method=method,
        poles=poles,
        functional_range=functional_range,
        examples_hash=examples_hash(negative, positive),
        passport=Passport.of(model, tokenizer, layer_path=layer_path, residual_norms=residual),
        extra={
            "probe_accuracy": {str(i): round(accuracies[i], 4) for i in range(total)},
            "num_examples": [len(negative), len(positive)],
            "residual_norm": {str(i): round(residual[i], 3) for i in chosen},
            "layer_weights": layer_weights,
            "system_prompt": system,
        },
    )


def _separation(neg: torch.Tensor, pos: torch.Tensor) -> list[float]:
    """Per layer: distance between pole means over the mean within-pole spread."""
    gap = (pos.mean(1) - neg.mean(1)).norm(dim=-1)
    spread = 0.5 * (
        (pos - pos.mean(1, keepdim=True)).norm(dim=-1).mean(1)
        + (neg - neg.mean(1, keepdim=True)).norm(dim=-1).mean(1)
    )
    return (gap / spread.clamp_min(1e-12)).tolist()
