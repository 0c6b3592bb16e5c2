"""The anchor of ``pole_mean`` extraction: mean reply activations of a broad set of replies, computed once.

``pole_mean`` measures each pole against the mean activation of an anchor set, by default the 600 training
replies of the built-in dimensions. Running them through the model is most of an extraction's time (about
two minutes for the demo model on 2 CPU cores), and it is the same for every dimension extracted for one
model under one system prompt. :func:`anchor_activations` therefore keeps the result, in memory for the
process and on disk under :func:`langchain_steer.models.cache_dir` (``anchors/``, about 70 KB for the demo
model), so a second extraction, a custom dimension or a re-run of ``langchain-steer extract`` skips it.

The cache key covers everything the activations depend on: the model's configuration and a checksum of its
weights (a changed or fine-tuned model at the same path gets a new entry), the tokenizer's vocabulary and
chat template, the anchor replies themselves, the system prompt, the layer path, and the dtype and device
type. Files are written to a temporary name and renamed, so a crash never leaves a partial entry; an entry
that does not load, or has the wrong shape, is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from langchain_steer.dimensions.examples import Example
from langchain_steer.extract import collect_activations, examples_hash
from langchain_steer.layers import find_layers, hidden_size
from langchain_steer.models import cache_dir
from langchain_steer.passport import tokenizer_fingerprints
from langchain_steer.tensors import model_device

logger = logging.getLogger(__name__)

__all__ = ["anchor_activations", "anchor_key"]

_MEMORY: dict[str, torch.Tensor] = {}
_LOCK = threading.Lock()


def _weights_checksum(model: torch.nn.Module) -> str:
    # Sums in float64 per parameter: cheap next to a forward pass over the anchor, and any change to the
    # weights (another checkpoint, a fine-tune, another quantisation) changes it.
    with torch.no_grad():
        sums = [f"{name}:{float(p.detach().double().sum()):.10e}" for name, p in model.named_parameters()]
    return hashlib.sha256("\n".join(sums).encode()).hexdigest()


def anchor_key(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    system: str | None,
    layer_path: str | None = None,
) -> str:
    """The cache key of these anchor activations (a SHA-256 hex digest)."""
    config = getattr(model, "config", None)
    vocabulary, template = tokenizer_fingerprints(tokenizer)
    payload = {
        "format": 1,
        "config": config.to_json_string(use_diff=False) if config is not None else type(model).__name__,
        "weights": _weights_checksum(model),
        "vocabulary": vocabulary,
        "template": template,
        "examples": examples_hash(list(examples), []),
        "system": system,
        "layer_path": layer_path,
        "dtype": str(next(model.parameters()).dtype),
        "device": model_device(model).type,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def anchor_activations(
    model: torch.nn.Module,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    system: str | None = None,
    batch_size: int = 8,
    progress: bool = True,
    layer_path: str | None = None,
    cache: bool = True,
) -> torch.Tensor:
    """Mean activation per decoder block over the anchor replies, shape ``(num_layers, hidden_size)``.

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        examples: the anchor replies (for the built-in dimensions,
            :func:`langchain_steer.dimensions.reference_examples`).
        system: the system prompt the replies are rendered under (the one the vectors will be used with).
        batch_size: examples per forward pass when computing.
        progress: show a progress bar when computing.
        layer_path: explicit path to the decoder blocks.
        cache: read and write the memory and disk caches (``False``: always compute, store nothing).

    Returns:
        A float32 CPU tensor.
    """
    if not examples:
        raise ValueError("The anchor needs at least one reply.")
    shape = (len(find_layers(model, layer_path)), hidden_size(model))
    key = anchor_key(model, tokenizer, examples, system=system, layer_path=layer_path) if cache else ""
    path = cache_dir() / "anchors" / f"{key}.safetensors"
    if cache:
        with _LOCK:
            if key in _MEMORY:
                return _MEMORY[key].clone()
        stored = _read(path, shape)
        if stored is not None:
            with _LOCK:
                _MEMORY[key] = stored
            return stored.clone()
    centre = collect_activations(
        model,
        tokenizer,
        list(examples),
        system=system,
        batch_size=batch_size,
        progress=progress,
        desc="anchor",
        layer_path=layer_path,
    ).mean(1)
    if cache:
        with _LOCK:
            _MEMORY[key] = centre
        _write(path, centre)
    return centre.clone()


def _read(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    if not path.exists():
        return None
    try:
        tensor = load_file(str(path))["anchor"]
    except Exception as error:  # a truncated or foreign file: recompute and replace it
        logger.warning("Ignoring the unreadable anchor cache entry %s (%s).", path, error)
        return None
    if tuple(tensor.shape) != shape or not torch.isfinite(tensor).all():
        logger.warning("Ignoring the anchor cache entry %s: wrong shape or non-finite values.", path)
        return None
    return tensor.float()


def _write(path: Path, tensor: torch.Tensor) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        save_file({"anchor": tensor.contiguous()}, temporary)
        os.replace(temporary, path)
    except OSError as error:  # a read-only or full cache folder only costs the next run its time
        logger.warning("Could not cache the anchor activations at %s (%s).", path, error)
