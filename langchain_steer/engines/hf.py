"""The HF engine: the model loaded with transformers in this process, decoded by our micro-batcher.

It is the default engine and the embedded path: the demo model runs on it offline on a laptop CPU. Steering
is computed per request as one offset per layer (:func:`~langchain_steer.hooks.layer_offsets`) and added by
the batch decoder's hooks to that request's row; grammars are compiled with xgrammar into logits
processors. The decoder and the queue live in :mod:`langchain_steer.batching` and
:mod:`langchain_steer.scheduler`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from transformers import RepetitionPenaltyLogitsProcessor

from langchain_steer.hooks import layer_offsets
from langchain_steer.models import load_model
from langchain_steer.scheduler import MicroBatcher, QueueFull, batcher_for
from langchain_steer.tickets import GenerationRequest
from langchain_steer.tools import ReplyRepetitionPenalty, logits_processor
from langchain_steer.vectors import SteeringVector

__all__ = ["engine_for", "finish_request", "load"]


def load(name: str, *, device: str | None, dtype: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)``, loaded once per process (:func:`~langchain_steer.models.load_model`)."""
    return load_model(name, device=device, dtype=dtype)


def engine_for(
    model: Any,
    *,
    max_batch_size: int,
    window: float,
    max_queue: int,
    queue_full: QueueFull,
    layer_path: str | None,
) -> MicroBatcher:
    """The process-wide micro-batcher for ``model`` with these settings."""
    return batcher_for(
        model,
        max_batch_size=max_batch_size,
        window=window,
        max_queue=max_queue,
        queue_full=queue_full,
        layer_path=layer_path,
    )


def finish_request(
    request: GenerationRequest,
    vectors: Mapping[str, SteeringVector],
    compiled: Any,
) -> GenerationRequest:
    """Add what our decoder needs: per-layer offsets for the strengths, and the logits processors.

    ``compiled`` is the xgrammar grammar of ``request.constraint`` (or ``None``). An explicit repetition
    penalty applies to prompt and reply, as in HF ``generate``; ``request.reply_penalty`` only to the
    tokens of the reply.
    """
    processors: list[Any] = []
    penalty = request.repetition_penalty
    if penalty is not None and penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty))
    if request.reply_penalty is not None:
        processors.append(ReplyRepetitionPenalty(len(request.input_ids), request.reply_penalty))
    if compiled is not None:
        # The grammar mask runs last, so the reply still always matches the schema.
        processors.append(logits_processor(compiled))
    return replace(
        request, offsets=layer_offsets(vectors, request.strengths), processors=processors
    )
