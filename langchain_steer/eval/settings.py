"""``ReplySettings``: how every evaluation runner generates and scores its replies.

Pole evaluation, the prompted-pole baseline, range calibration and sweeps all answer requests with greedy,
batched, optionally steered replies and score them by perplexity. They take these settings as one object,
so that a run's replies, its baseline and its calibration are generated alike by construction:

.. code-block:: python

    from langchain_steer.eval import ReplySettings, evaluate_poles

    settings = ReplySettings(system=PLANNER_SYSTEM_PROMPT, max_new_tokens=48)
    evaluate_poles(model, tokenizer, vectors, prompts=prompts, judges=judges, settings=settings)
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ReplySettings", "Scorer"]

Scorer = tuple[Any, Any]
"""A ``(model, tokenizer)`` pair that scores perplexity."""


@dataclasses.dataclass(frozen=True)
class ReplySettings:
    """How evaluation replies are generated (greedy) and scored.

    Attributes:
        system: the system prompt before every request; perplexity is conditioned on it too. ``None``: none.
        max_new_tokens: reply length, 1 to 1024 (the measurements in ``docs/eval.md`` use 48).
        repetition_penalty: HF repetition penalty of every reply, 0.5 to 2; ``None`` or 1 turns it off. The
            default 1.1 is the demo's and the shipped vectors' calibration's: the 135M model otherwise loops
            in some greedy replies.
        batch_size: rows per batched ``generate``, 1 to 256.
        reference: an optional ``(model, tokenizer)`` of an independent model that scores perplexity too.
        progress: show progress bars.
        layer_path: explicit path to the decoder blocks, for models whose layers are not found
            automatically (:func:`langchain_steer.layers.find_layers`).

    Raises:
        ValueError: a size or penalty out of range (at construction, before any long run starts).
    """

    system: str | None = None
    max_new_tokens: int = 48
    repetition_penalty: float | None = 1.1
    batch_size: int = 16
    reference: Scorer | None = None
    progress: bool = True
    layer_path: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not 1 <= self.max_new_tokens <= 1024:
            raise ValueError(f"max_new_tokens must be from 1 to 1024, not {self.max_new_tokens}.")
        if isinstance(self.batch_size, bool) or not 1 <= self.batch_size <= 256:
            raise ValueError(f"batch_size must be from 1 to 256, not {self.batch_size}.")
        penalty = self.repetition_penalty
        if penalty is not None and not 0.5 <= penalty <= 2:
            raise ValueError(f"repetition_penalty must be from 0.5 to 2, not {penalty}.")

    @property
    def generate_kwargs(self) -> dict[str, Any]:
        """The extra keyword arguments of HF ``generate`` these settings ask for."""
        penalty = self.repetition_penalty
        return {} if penalty is None or penalty == 1 else {"repetition_penalty": penalty}

    def describe(self) -> dict[str, Any]:
        """The JSON-serialisable record of these settings that reports keep beside their results."""
        return {
            "system": self.system,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "repetition_penalty": self.repetition_penalty,
            "reference_model": (
                str(getattr(self.reference[0].config, "name_or_path", "")) if self.reference else None
            ),
        }
