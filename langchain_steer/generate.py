"""Steered text generation for a batch of chats, each row with its own strengths.

This is HF ``generate`` under steering, for the CLI's ``chat`` and ``demo`` and for the evaluation runners:
chat messages are rendered with the model's chat template, left-padded into one batch, and generated under
:func:`~langchain_steer.hooks.steer` (which holds the model lock) with one strength per row.
:class:`~langchain_steer.chat_model.SteeredChatModel` does not use it: it decodes through its own batch
decoder and micro-batcher (:mod:`langchain_steer.batching`, :mod:`langchain_steer.scheduler`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from langchain_steer.hooks import Positions, steer
from langchain_steer.prompts import render_chat
from langchain_steer.vectors import SteeringVector

__all__ = ["Chat", "encode_prompts", "generate_batch"]

Chat = Sequence[Mapping[str, Any]]
"""A conversation as ``[{"role": "user", "content": "..."}, ...]``."""


def encode_prompts(
    tokenizer: Any, prompts: Sequence[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """Tokenise rendered prompts, left-padded, with BOS added only where no chat template wrote it."""
    # Templates already contain BOS and role markers; a base-model transcript needs BOS added.
    special = not getattr(tokenizer, "chat_template", None)
    batch = tokenizer(
        list(prompts),
        return_tensors="pt",
        padding=True,
        padding_side="left",
        add_special_tokens=special,
    )
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def generate_batch(
    model: Any,
    tokenizer: Any,
    chats: Sequence[Chat],
    vectors: Mapping[str, SteeringVector],
    strengths: Sequence[Mapping[str, float]],
    *,
    max_new_tokens: int = 64,
    positions: Positions = "all",
    layer_path: str | None = None,
    **generate_kwargs: Any,
) -> list[str]:
    """Generate one reply per chat, each steered with its own strengths, in a single ``generate``.

    Args:
        model: the causal LM.
        tokenizer: its tokenizer.
        chats: the conversations, one per row.
        vectors: dimension name → vector.
        strengths: one mapping per row (dimensions left out are 0 for that row).
        max_new_tokens: length limit per reply.
        positions: the hook position policy (see :mod:`langchain_steer.hooks`).
        layer_path: explicit path to the decoder blocks, for models whose layers are not found
            automatically (see :func:`langchain_steer.layers.find_layers`).
        **generate_kwargs: passed to ``model.generate`` (default: greedy decoding).

    Returns:
        The decoded replies, special tokens removed.
    """
    if len(chats) != len(strengths):
        raise ValueError(f"{len(chats)} chats but {len(strengths)} strength mappings.")
    if not chats:
        return []
    names = sorted({name for row in strengths for name in row})
    per_row = {name: [float(row.get(name, 0.0)) for row in strengths] for name in names}
    encoded = encode_prompts(
        tokenizer,
        [render_chat(tokenizer, c) for c in chats],
        next(model.parameters()).device,
    )
    generate_kwargs.setdefault("do_sample", False)
    generate_kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)
    # steer() holds the model lock: no serving batch on this model runs under these hooks, or they under its.
    with steer(model, vectors, per_row, positions=positions, layer_path=layer_path):
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, **generate_kwargs)
    new_tokens = output[:, encoded["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
