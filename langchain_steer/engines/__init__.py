"""The engines that decode a :class:`~langchain_steer.SteeredChatModel`'s replies, behind one interface.

* ``"hf"`` (:mod:`langchain_steer.engines.hf`, the default): the model loaded with transformers in this
  process, decoded by our own batch decoder and micro-batcher. Works everywhere, the embedded demo model
  included, and needs nothing beyond the base install.
* ``"vllm"`` (:mod:`langchain_steer.engines.vllm`): vLLM's async engine in this process, steered per
  request from a basis registered at start-up. For more users, larger models, GPUs, and tensor or
  pipeline parallelism (``pip install "langchain-steer[vllm]"``).

The chat model talks to either through the :class:`Engine` protocol below: it prepares a
:class:`~langchain_steer.tickets.GenerationRequest`, submits it, and reads the reply's token ids from the
:class:`~langchain_steer.tickets.Ticket` it gets back. Everything a user sees (steering, streaming, stop
strings, tools, structured output, usage, errors) is built on that, so it is the same on both engines.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal, Protocol

from langchain_steer.scheduler import BatcherStats
from langchain_steer.tickets import GenerationRequest, Ticket

__all__ = ["ENGINES", "Engine", "EngineName"]

EngineName = Literal["hf", "vllm"]
ENGINES: tuple[str, ...] = ("hf", "vllm")


class Engine(Protocol):
    """What the chat model needs from an engine.

    Our :class:`~langchain_steer.scheduler.MicroBatcher` and
    :class:`~langchain_steer.engines.vllm.VLLMEngine` both provide it.
    """

    stats: BatcherStats

    @property
    def pending(self) -> int:
        """Requests submitted and not yet finished."""

    def submit(self, request: GenerationRequest) -> Ticket:
        """Start ``request``; its ticket is iterated with ``for``."""

    async def asubmit(self, request: GenerationRequest) -> Ticket:
        """Start ``request``; its ticket is iterated with ``async for``."""

    def hold(self, count: int, timeout: float = 1.0) -> AbstractContextManager[None]:
        """While open, wait for ``count`` more arrivals before starting a batch (where that matters)."""

    def close(self, timeout: float = 30.0) -> None:
        """Finish or cancel what is in flight and release the engine."""
