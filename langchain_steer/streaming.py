"""Run ``model.generate`` in a worker thread and stream its text, with stop strings and cancellation.

:func:`stream_generate` is the one place where a generate thread lives. It follows these rules:

* the thread runs **inside** the caller's steering context, and it is stopped and joined in ``finally``
  before that context removes its hooks. A consumer that stops iterating early (``break``, an exception,
  ``close()``) therefore never leaves a thread running on a model whose hooks are gone;
* stop strings end generation. Text that might be the start of a stop string is held back until it is clear
  that it is not, so no part of a stop string is ever emitted;
* an error in the thread is raised again in the consumer, and the queue is always ended, so the consumer
  never waits forever.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

__all__ = ["Delta", "stream_generate"]

_END = object()


@dataclass
class Delta:
    """A piece of generated text and the number of new tokens it came from."""

    text: str
    tokens: int


class _QueueStreamer(BaseStreamer):
    """Receives token ids from ``generate`` and queues ``(token ids)`` per step, skipping the prompt."""

    def __init__(self, out: queue.Queue[Any]) -> None:
        self.out = out
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate first hands over the prompt itself
            self.prompt_seen = True
            return
        self.out.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.out.put(_END)


class _Halt(StoppingCriteria):
    """Stops generation when any of the events is set (the caller's cancel, or our own stop)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        halted = any(event.is_set() for event in self.events)
        return torch.full((input_ids.shape[0],), halted, dtype=torch.bool)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def stream_generate(
    model: Any,
    tokenizer: Any,
    inputs: dict[str, torch.Tensor],
    *,
    stop: Sequence[str] = (),
    cancel: threading.Event | None = None,
    timeout: float = 600.0,
    **generate_kwargs: Any,
) -> Iterator[Delta]:
    """Generate for a single row and yield text deltas as tokens arrive.

    The caller must already hold whatever steering context and model lock apply: this function only owns the
    worker thread, and it has stopped and joined that thread by the time it returns or is closed.

    Args:
        model: a HuggingFace causal LM.
        tokenizer: its tokenizer (used to decode).
        inputs: ``input_ids`` and ``attention_mask`` of shape ``(1, n)``.
        stop: stop strings; the text is cut before the first one.
        cancel: set it from another thread to stop generation early.
        timeout: seconds to wait for one token before giving up.
        **generate_kwargs: passed to ``model.generate``.

    Yields:
        :class:`Delta` pieces. The last one may have empty text; ``tokens`` always adds up to the number of
        tokens generated (EOS included).

    Raises:
        TimeoutError: no token arrived within ``timeout`` seconds.
        Exception: whatever ``generate`` raised in the worker thread.
    """
    tokens: queue.Queue[Any] = queue.Queue()
    halt = threading.Event()  # ours: a stop string was seen, or the consumer went away
    errors: list[BaseException] = []
    streamer = _QueueStreamer(tokens)
    criteria = StoppingCriteriaList([_Halt(halt, *([cancel] if cancel else []))])

    def work() -> None:
        try:
            model.generate(
                **inputs, streamer=streamer, stopping_criteria=criteria, **generate_kwargs
            )
        except BaseException as error:  # noqa: BLE001 - handed to the consumer thread
            errors.append(error)
        finally:
            streamer.end()  # always unblock the consumer, even after an error

    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    generated: list[int] = []
    emitted = 0  # characters of the decoded text already yielded
    pending_tokens = 0
    worker = threading.Thread(target=work, name="langchain-steer-generate", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = tokens.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"generate produced no token for {timeout:g} s") from None
            if item is _END:
                break
            pending_tokens += len(item)
            generated.extend(t for t in item if t not in special)
            text = tokenizer.decode(generated, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                halt.set()
                yield Delta(text[emitted:cut], pending_tokens)
                pending_tokens = 0
                emitted = len(text)
                break
            safe = len(text) - _held_back(text, stop)
            if safe > emitted or pending_tokens:
                yield Delta(text[emitted : max(safe, emitted)], pending_tokens)
                emitted = max(safe, emitted)
                pending_tokens = 0
        # Drain what the worker sent after a stop, for an honest token count.
        halt.set()
        worker.join()
        while not tokens.empty():
            item = tokens.get_nowait()
            if item is not _END:
                pending_tokens += len(item)
        if errors:
            raise errors[0]
        text = tokenizer.decode(generated, skip_special_tokens=True)
        stopped = any(s in text for s in stop)
        tail = "" if stopped else text[emitted:]
        if tail or pending_tokens:
            yield Delta(tail, pending_tokens)
    finally:
        halt.set()
        worker.join()
