"""A vLLM logits processor: the HF engine's reply-only repetition penalty, per request.

A grammar-constrained reply (a tool call, structured output) on a small model tends to loop on a token
until ``max_tokens``. Our HF engine then penalises tokens the reply has already produced, but not the
prompt's, from which the values of a call are usually copied
(:class:`~langchain_steer.tools.ReplyRepetitionPenalty`). vLLM's own ``repetition_penalty`` counts the
prompt too, so the vLLM engine registers this processor (``logits_processors``) and turns it on for a
request with ``SamplingParams.extra_args={"reply_repetition_penalty": 1.1}``: the same formula on the same
tokens, so both engines constrain and penalise a reply alike.

It imports vLLM at the top: only vLLM's processes load it.
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

__all__ = ["ReplyRepetitionProcessor"]

KEY = "reply_repetition_penalty"


class ReplyRepetitionProcessor(LogitsProcessor):
    """Divide positive (multiply negative) logits of tokens already in the reply by the request's penalty."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.device = device
        # batch row -> (penalty, the request's live list of output token ids)
        self.rows: dict[int, tuple[float, list[int]]] = {}

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """A penalty must be a number from 1 to 2 (vLLM turns this ``ValueError`` into a 400)."""
        value = (sampling_params.extra_args or {}).get(KEY)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1.0 <= value <= 2.0:
            raise ValueError(f"{KEY} must be a number from 1 to 2, not {value!r}.")

    def is_argmax_invariant(self) -> bool:
        """A penalty can change which token is the most likely."""
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        """Follow requests as they join, leave and move within the persistent batch."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, _prompt, output in batch_update.added:
            value = ((params.extra_args or {}).get(KEY) if params is not None else None) or 1.0
            if float(value) != 1.0:
                self.rows[index] = (float(value), output)
            else:
                self.rows.pop(index, None)
        for source, target, direction in batch_update.moved:
            moving, there = self.rows.pop(source, None), self.rows.pop(target, None)
            if moving is not None:
                self.rows[target] = moving
            if direction == MoveDirectionality.SWAP and there is not None:
                self.rows[source] = there

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Penalise, row by row, the tokens each penalised request has generated so far."""
        for index, (penalty, output) in self.rows.items():
            if not output or index >= logits.shape[0]:
                continue
            ids = torch.tensor(sorted(set(output)), device=logits.device, dtype=torch.long)
            seen = logits[index, ids]
            logits[index, ids] = torch.where(seen < 0, seen * penalty, seen / penalty)
        return logits
