"""Extract steering vectors from contrastive examples, and calibrate their functional range.

The recipe (Bo et al. 2025, after Rimsky et al.'s CAA):

1. Render each example as a chat: the user's request, then an assistant reply written at one pole of
   the preference ("budget" or "luxury" answers to the same request).
2. Run the model and average each decoder block's output over the **reply tokens** only.
3. Per layer, score how well the two poles separate with a cross-validated logistic probe, and keep
   the ``top_k`` layers.
4. On those layers take a direction: ``mean_diff`` (difference of the pole means, CAA), ``pca`` (first
   principal component of the pooled activations) or ``probe`` (the logistic-regression normal, the
   paper's method). Each is oriented towards the positive pole and scaled to unit norm.
5. :func:`langchain_steer.calibrate.calibrate_range` sets the vector's ``functional_range``: the largest
   norm whose steering keeps held-out perplexity within ``max_ratio`` (1.5) of the unsteered model.

Everything is deterministic (eval mode, no sampling, fixed folds) and batched, with progress bars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from langchain_steer.layers import find_layers, hidden_size, resolve_layer_indices
from langchain_steer.vectors import SteeringVector

logger = logging.getLogger(__name__)

__all__ = [
    "Example",
    "Method",
    "collect_activations",
    "examples_hash",
    "extract_vector",
    "probe_accuracies",
    "render_example",
    "split_pairs",
]

Method = Literal["mean_diff", "pca", "probe"]
MIN_EXAMPLES_PER_POLE = 8
MAX_IMBALANCE = 2.0


@dataclasses.dataclass(frozen=True)
class Example:
    """A user request and an assistant reply written at one pole of a preference."""

    prompt: str
    response: str


def examples_hash(negative: Sequence[Example], positive: Sequence[Example]) -> str:
    """SHA-256 of the examples, recorded in a vector so its provenance can be checked."""
    payload = json.dumps(
        [[dataclasses.astuple(e) for e in negative], [dataclasses.astuple(e) for e in positive]],
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def render_example(tokenizer: Any, example: Example) -> tuple[list[int], int]:
    """Tokenise ``example`` as a chat turn; return ``(token ids, index of the first reply token)``.

    Models without a chat template get a plain ``User: ... / Assistant:`` transcript prefix.
    """
    messages = [{"role": "user", "content": example.prompt}]
    if getattr(tokenizer, "chat_template", None):
        prefix = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        special = False  # the template already wrote BOS and role markers
    else:
        prefix = f"User: {example.prompt}\nAssistant: "
        special = True
    prefix_ids = tokenizer(prefix, add_special_tokens=special)["input_ids"]
    full_ids = tokenizer(prefix + example.response, add_special_tokens=special)["input_ids"]
    start = len(prefix_ids)
    if full_ids[:start] != prefix_ids:
        # A tokenizer merged across the boundary; fall back to counting from the reply's own length.
        start = len(full_ids) - len(
            tokenizer(example.response, add_special_tokens=False)["input_ids"]
        )
    if start >= len(full_ids):
        raise ValueError(f"Example reply is empty after tokenisation: {example!r}")
    return list(full_ids), start


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def pad_right(
    tokenizer: Any, rows: Sequence[list[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):  # right padding: positions stay those of the unpadded text
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
    desc: str = "activations",
) -> torch.Tensor:
    """Mean output of every decoder block over each example's reply tokens.

    Returns:
        float32 CPU tensor of shape ``(num_layers, len(examples), hidden_size)``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    blocks = find_layers(model, layer_path)
    rendered = [render_example(tokenizer, e) for e in examples]
    device = model_device(model)
    out = torch.zeros(len(blocks), len(examples), hidden_size(model), dtype=torch.float32)
    index = 0
    for batch in tqdm(chunked(rendered, batch_size), desc=desc, disable=not progress, leave=False):
        ids, mask = pad_right(tokenizer, [r[0] for r in batch], device)
        reply = torch.zeros_like(mask, dtype=torch.float32)
        for i, (row, start) in enumerate(batch):
            reply[i, start : len(row)] = 1.0
        weights = (reply / reply.sum(1, keepdim=True)).unsqueeze(-1)
        rows = slice(index, index + len(batch))
        handles = [
            block.register_forward_hook(_recorder(out, layer, rows, weights))
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
    out: torch.Tensor, layer: int, rows: slice, weights: torch.Tensor
) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        pooled = (hidden.float() * weights.to(hidden.device)).sum(1)
        out[layer, rows] = pooled.cpu()

    return hook


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
        raise ValueError(f"Unknown method {method!r}; use 'mean_diff', 'pca' or 'probe'.")
    if torch.dot(direction, mean_diff) < 0:  # orient towards the positive pole
        direction = -direction
    norm = direction.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("The two poles give identical activations; no direction can be extracted.")
    return (direction / norm).float()


def extract_vector(
    model: nn.Module,
    tokenizer: Any,
    negative: Sequence[Example],
    positive: Sequence[Example],
    *,
    name: str = "",
    poles: tuple[str, str] = ("negative", "positive"),
    method: Method = "mean_diff",
    layers: Sequence[int] | None = None,
    top_k: int = 4,
    candidate_layers: tuple[float, float] = (0.25, 0.75),
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
    functional_range: float = 1.0,
) -> SteeringVector:
    """Extract a unit-norm steering direction per layer from contrastive examples.

    Args:
        model: the causal LM to steer later.
        tokenizer: its tokenizer.
        negative: replies at the negative pole (e.g. budget).
        positive: replies at the positive pole (e.g. luxury); ideally answers to the same prompts.
        name: dimension name stored in the vector.
        poles: ``(negative, positive)`` pole names.
        method: ``"mean_diff"``, ``"pca"`` or ``"probe"``.
        layers: explicit layer indices; skips probe-based selection.
        top_k: how many layers to keep, by cross-validated probe accuracy (ties broken by the
            separation of the pole means relative to their spread).
        candidate_layers: the fraction of depth ``(start, end)`` to select from. Steering the first
            and last blocks mostly breaks text, so the default keeps the middle half.
        batch_size: examples per forward pass.
        progress: show tqdm progress bars.
        layer_path: explicit path to the decoder blocks.
        functional_range: the norm at strength 1 until :func:`calibrate_range` sets it.

    Raises:
        ValueError: too few or unbalanced examples, a bad layer index, or an unknown method.
    """
    _check_balance(negative, positive)
    total = len(find_layers(model, layer_path))
    acts_neg = collect_activations(
        model,
        tokenizer,
        negative,
        batch_size=batch_size,
        progress=progress,
        layer_path=layer_path,
        desc=f"{name or 'vector'}: {poles[0]}",
    )
    acts_pos = collect_activations(
        model,
        tokenizer,
        positive,
        batch_size=batch_size,
        progress=progress,
        layer_path=layer_path,
        desc=f"{name or 'vector'}: {poles[1]}",
    )
    accuracies = probe_accuracies(acts_neg, acts_pos)
    if layers is None:
        lo = max(0, int(math.floor(candidate_layers[0] * total)))
        hi = min(total, max(lo + 1, int(math.ceil(candidate_layers[1] * total))))
        separation = _separation(acts_neg, acts_pos)
        ranked = sorted(range(lo, hi), key=lambda i: (-accuracies[i], -separation[i], i))
        chosen = sorted(ranked[: max(1, top_k)])
    else:
        chosen = resolve_layer_indices(layers, total)
    directions = {i: _direction(acts_neg[i], acts_pos[i], method) for i in chosen}
    return SteeringVector(
        directions=directions,
        name=name,
        model_id=str(getattr(getattr(model, "config", None), "name_or_path", "") or ""),
        method=method,
        poles=poles,
        functional_range=functional_range,
        examples_hash=examples_hash(negative, positive),
        extra={
            "probe_accuracy": {str(i): round(accuracies[i], 4) for i in range(total)},
            "num_examples": [len(negative), len(positive)],
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


def split_pairs(
    pairs: Sequence[Mapping[str, str]],
) -> tuple[list[Example], list[Example]]:
    """Turn ``{"prompt", "negative", "positive"}`` records into negative and positive examples."""
    negative = [Example(p["prompt"], p["negative"]) for p in pairs]
    positive = [Example(p["prompt"], p["positive"]) for p in pairs]
    return negative, positive
