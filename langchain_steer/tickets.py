"""What a caller hands the batch decoder, and what it holds while its reply is decoded.

* :class:`GenerationRequest`: one reply to generate: prompt ids, steering offsets, decoding settings.
* :class:`Ticket`: the channel between that request and the decoding thread. The caller iterates it for the
  reply's token ids (``for`` from a thread, ``async for`` from an event loop) and cancels it to make the row
  leave the batch; the decoder delivers ids and finishes it.

:mod:`langchain_steer.batching` decodes requests; :mod:`langchain_steer.scheduler` queues them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from langchain_steer.hooks import Positions
from langchain_steer.tools import Constraint

__all__ = ["GenerationRequest", "LogitsProcessor", "Ticket"]


LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""HF-style ``processor(input_ids, scores) -> scores``, called with one row: ``(1, n)`` and ``(1, vocab)``."""


_END = object()


@dataclass(eq=False)
class GenerationRequest:
    """One reply to generate: the prompt, its steering and its decoding settings.

    Attributes:
        input_ids: the prompt's token ids (no padding).
        max_new_tokens: the reply's token limit.
        eos_token_ids: tokens that end the reply (they are counted and delivered, then the row leaves).
        offsets: layer index → the ``(hidden,)`` vector this row adds at that layer, as computed by
            :func:`~langchain_steer.hooks.layer_offsets` with scalar strengths. Empty: no steering.
        positions: the steering position policy for the prompt; generated tokens are always steered.
        temperature: 0 for greedy decoding, otherwise the sampling temperature.
        top_p: nucleus sampling threshold (when sampling).
        seed: seeds this row's own random generator (when sampling).
        processors: logits processors applied in order before temperature and top-p (HF engine).
        strengths: the strengths ``offsets`` were computed from, by dimension; the vLLM engine steers from
            these (its workers hold the vectors).
        constraint: the grammar the reply must match, in engine-neutral form (the vLLM engine hands it to
            vLLM's structured outputs; the HF engine has it compiled into ``processors``).
        repetition_penalty: the caller's explicit HF-style repetition penalty, if any (vLLM engine).
        reply_penalty: a repetition penalty on tokens of the reply only (not the prompt), for
            grammar-constrained replies without an explicit penalty (vLLM engine).
    """

    input_ids: Sequence[int]
    max_new_tokens: int
    eos_token_ids: frozenset[int] = frozenset()
    offsets: dict[int, torch.Tensor] = field(default_factory=dict)
    positions: Positions = "all"
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    processors: list[LogitsProcessor] = field(default_factory=list)
    strengths: dict[str, float] = field(default_factory=dict)
    constraint: Constraint | None = None
    repetition_penalty: float | None = None
    reply_penalty: float | None = None

    def __post_init__(self) -> None:
        if not self.input_ids:
            raise ValueError("A generation request needs at least one prompt token.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}.")
        if self.positions not in ("all", "generated"):
            raise ValueError(f"positions must be 'all' or 'generated', not {self.positions!r}.")


class Ticket:
    """The channel between one request and the thread that decodes it.

    The consumer iterates the ticket (``for ids in ticket`` or ``async for ids in ticket``) to receive the
    reply's token ids step by step; iteration ends when the row leaves the batch and raises the error if
    decoding failed. :meth:`cancel` asks for the row to leave at the next step (or drops it from the queue).
    """

    def __init__(
        self,
        request: GenerationRequest,
        loop: Any = None,
        *,
        timeout: float = 600.0,
        on_cancel: Callable[[Ticket], None] | None = None,
        on_finish: Callable[[Ticket], None] | None = None,
    ) -> None:
        import asyncio

        self.request = request
        self.timeout = timeout
        self.finish_reason: str | None = None
        """``"stop"`` (EOS), ``"length"``, ``"cancelled"`` or ``"error"``, once finished."""
        self.error: BaseException | None = None
        self._loop = loop
        self._queue: Any = asyncio.Queue() if loop is not None else queue.Queue()
        self._done_async = asyncio.Event() if loop is not None else None
        self._cancelled = threading.Event()
        self._finished = threading.Event()
        self._on_cancel = on_cancel
        self._on_finish = on_finish

    # -- consumer side ------------------------------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled.is_set()

    @property
    def finished(self) -> bool:
        """Whether the row has left the batch (or never will run)."""
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop this reply; safe to call from any thread, at any time, more than once."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        if self._on_cancel is not None and not self._finished.is_set():
            self._on_cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the row has left the batch; returns whether it has."""
        return self._finished.wait(timeout)

    async def wait_async(self) -> None:
        """Wait, without blocking the event loop, until the row has left the batch."""
        if self._done_async is None:
            raise RuntimeError("This ticket was not created for an event loop.")
        await self._done_async.wait()

    def __iter__(self) -> Iterator[list[int]]:
        if self._loop is not None:
            raise RuntimeError("This ticket was created for an event loop: use `async for`.")
        while (item := self._next()) is not _END:
            yield item
        self._raise_if_failed()

    async def __aiter__(self) -> AsyncIterator[list[int]]:
        if self._loop is None:
            raise RuntimeError("This ticket was created without an event loop: use `for`.")
        while (item := await self._anext()) is not _END:
            yield item
        self._raise_if_failed()

    def _next(self) -> Any:
        try:
            return self._queue.get(timeout=self.timeout)
        except queue.Empty:
            raise TimeoutError(f"No token arrived for {self.timeout:g} s.") from None

    async def _anext(self) -> Any:
        import asyncio

        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            if hasattr(asyncio, "timeout"):  # Python 3.11+
                # Not ``wait_for``: before 3.12 it returns the item and drops a cancellation that
                # arrives as the item does, so a cancelled stream would go on to its end. Python 3.10
                # has no ``timeout`` and keeps that rare race.
                async with asyncio.timeout(self.timeout):
                    return await self._queue.get()
            return await asyncio.wait_for(self._queue.get(), self.timeout)
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            raise TimeoutError(f"No token arrived for {self.timeout:g} s.") from None

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    # -- decoder side -------------------------------------------------------------------------------
    def _push(self, item: Any) -> None:
        if self._loop is None:
            self._queue.put(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            self._cancelled.set()

    def deliver(self, ids: list[int]) -> None:
        """Hand newly generated token ids to the consumer (called by the decoding thread)."""
        self._push(ids)

    def finish(self, reason: str, error: BaseException | None = None) -> None:
        """Mark the row as finished and end the consumer's iteration (called by the decoding thread)."""
        if self._finished.is_set():
            return
        self.finish_reason = reason
        self.error = error
        self._push(_END)
        self._finished.set()
        if self._on_finish is not None:
            self._on_finish(self)
        if self._loop is not None and self._done_async is not None:
            try:
                self._loop.call_soon_threadsafe(self._done_async.set)
            except RuntimeError:
                pass
