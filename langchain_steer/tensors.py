"""Small batching helpers shared by extraction, fluency scoring and evaluation: chunks, padding, device.

Pure functions with no state; one name per concept, so every module batches and pads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["chunked", "model_device", "pad_right"]

T = TypeVar("T")


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive slices of ``size`` (the last one may be shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def pad_right(
    tokenizer: Any, rows: Sequence[list[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id rows into ``(ids, attention mask)`` tensors on ``device``.

    Right padding keeps every row's positions those of its unpadded text, which is what scoring and
    activation collection need (generation pads on the left instead). The pad id is the tokenizer's, or 0.
    """
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter: where its inputs go."""
    return next(model.parameters()).device
