"""Micro-batching: concurrent requests on one model share batched forward passes.

Every :class:`~langchain_steer.chat_model.SteeredChatModel` call becomes a
:class:`~langchain_steer.batching.GenerationRequest` submitted to the :class:`MicroBatcher` of its model. One
worker thread per batcher owns the decoding:

1. When a request arrives at an idle batcher, the worker waits ``window`` seconds (a few milliseconds) for
   companions, up to ``max_batch_size``, then prefills them together.
2. It steps the batch one token at a time. Rows that finish leave; requests that arrive meanwhile join
   between steps while there is room (see :mod:`langchain_steer.batching` for which caches allow joining).
3. When the batch is empty and nothing waits, it removes its hooks, releases the model lock, and sleeps.
   After ``idle_exit`` seconds without work the thread ends; the next request starts a new one.

Requests that find the batch full wait in a queue of at most ``max_queue`` entries. When the queue is full,
``queue_full="wait"`` makes callers wait for room and ``"error"`` raises :class:`QueueFullError` at once.
Cancelling a request (``ticket.cancel()``, a cancelled asyncio task, a closed stream) removes it from the
queue, or from the batch at the next step, and leaves every other row as it was.

The worker holds :func:`~langchain_steer.models.model_lock` while a batch runs, so extraction, calibration
or a hand-written ``steer()`` block on the same model never runs inside a batch.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from langchain_steer.batching import BatchDecoder, GenerationRequest, Ticket
from langchain_steer.models import model_lock

__all__ = ["BatcherStats", "MicroBatcher", "QueueFull", "QueueFullError", "batcher_for"]

logger = logging.getLogger(__name__)

QueueFull = Literal["wait", "error"]
MAX_BATCH_SIZE_LIMIT = 256
MAX_QUEUE_LIMIT = 100_000


class QueueFullError(RuntimeError):
    """The micro-batcher's queue is full and it was configured with ``queue_full="error"``."""


@dataclass
class BatcherStats:
    """Counters of one :class:`MicroBatcher`, for tests, benchmarks and monitoring."""

    requests: int = 0
    """Requests admitted into a batch."""
    steps: int = 0
    """Decode steps run (one forward pass each, whatever the batch size)."""
    row_steps: int = 0
    """Sum of the batch size over all steps (``row_steps / steps`` is the mean batch size)."""
    largest_batch: int = 0
    """The most rows decoded in one step."""
    joins: int = 0
    """Requests that joined a batch already running."""
    cancelled: int = 0
    """Requests cancelled by their caller (a closed stream, a disconnect, a stop string the chat model saw):
    they left the queue, or the batch at the next step."""


@dataclass
class _Hold:
    target: int
    deadline: float


class MicroBatcher:
    """Collects generation requests for one model and decodes them in shared batches on one thread.

    Args:
        model: the HuggingFace causal LM (held weakly: the batcher never keeps a model alive).
        max_batch_size: the most rows decoded together (1 to 256).
        window: seconds an idle batcher waits for companions before it starts (0 to 1).
        max_queue: the most requests waiting for a place in the batch (1 to 100000).
        queue_full: ``"wait"`` for room, or ``"error"`` to raise :class:`QueueFullError`.
        idle_exit: seconds without work after which the worker thread ends.
        layer_path: explicit path to the decoder blocks, for architectures discovery misses.

    Use :func:`batcher_for` to share one batcher per model and settings.
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch_size: int = 8,
        window: float = 0.005,
        max_queue: int = 256,
        queue_full: QueueFull = "wait",
        idle_exit: float = 30.0,
        layer_path: str | None = None,
    ) -> None:
        check_batching(max_batch_size, window, max_queue, queue_full)
        self._model = weakref.ref(model)
        self.max_batch_size = max_batch_size
        self.window = window
        self.max_queue = max_queue
        self.queue_full = queue_full
        self.idle_exit = idle_exit
        self.layer_path = layer_path
        self.stats = BatcherStats()
        self._cond = threading.Condition()
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._holds: list[_Hold] = []
        self._arrivals = 0
        self._unfinished: set[Ticket] = set()
        self._closing = False
        self._thread: threading.Thread | None = None
        _live.add(self)

    @property
    def pending(self) -> int:
        """Requests submitted and not yet finished (waiting or decoding)."""
        with self._cond:
            return len(self._unfinished)

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every request, waiting or running, and stop the worker thread (waits ``timeout`` s).

        Runs automatically at interpreter exit, so a script that ends while replies are still being
        generated stops cleanly instead of killing a thread in the middle of a forward pass.
        """
        with self._cond:
            self._closing = True
            thread = self._thread
            tickets = list(self._unfinished)
            self._cond.notify_all()
        for ticket in tickets:
            ticket.cancel()
        _evict(self)  # a shared batcher that is closed must not be handed to the next caller
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- submitting -----------------------------------------------------------------------------------
    def submit(
        self,
        request: GenerationRequest,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        block: bool = True,
        timeout: float | None = None,
    ) -> Ticket:
        """Queue ``request`` and return its :class:`~langchain_steer.batching.Ticket`.

        Args:
            request: what to generate.
            loop: the event loop the ticket will be consumed from (``async for``); ``None`` for a thread.
            block: with ``queue_full="wait"``, whether to wait for room (otherwise raise at once).
            timeout: the longest wait for room, in seconds (``None``: no limit).

        Raises:
            QueueFullError: the queue is full and waiting is not allowed, or timed out.
        """
        model = self._model()
        if model is not None and model_lock(model).held_by_me:
            # The worker needs the lock this thread holds: waiting would hang until the ticket's timeout.
            raise RuntimeError(
                "This thread holds the model's lock (a steer() block, or extraction, on the same model), "
                "so the chat model cannot run on it until that ends. Call the chat model outside the "
                "steer() block; to steer the chat model, pass steering= instead."
            )
        ticket = Ticket(request, loop, on_cancel=self._withdraw, on_finish=self._forget)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closing:
                raise RuntimeError("This micro-batcher has been closed.")
            while len(self._waiting) >= self.max_queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (
                    self.queue_full == "error"
                    or not block
                    or (remaining is not None and remaining <= 0)
                ):
                    raise QueueFullError(
                        f"{len(self._waiting)} requests are already waiting for this model "
                        f"(max_queue={self.max_queue}); try again later or raise max_queue."
                    )
                self._cond.wait(remaining)
            self._waiting.append(ticket)
            self._unfinished.add(ticket)
            self._arrivals += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="langchain-steer-batcher", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return ticket

    async def asubmit(self, request: GenerationRequest) -> Ticket:
        """Like :meth:`submit`, for a ticket consumed with ``async for``; waits for room without blocking."""
        return await submit_when_room(self.submit, request, self.queue_full)

    @contextmanager
    def hold(self, count: int, timeout: float = 1.0) -> Iterator[None]:
        """Inside this block, an idle batcher waits for ``count`` more arrivals (at most ``timeout`` s).

        ``SteeredChatModel.batch`` uses it so that all its inputs start in one batch, even when preparing
        them takes longer than the window.
        """
        with self._cond:
            hold = _Hold(self._arrivals + max(0, count), time.monotonic() + timeout)
            self._holds.append(hold)
        try:
            yield
        finally:
            with self._cond:
                self._holds.remove(hold)
                self._cond.notify_all()

    def _forget(self, ticket: Ticket) -> None:
        with self._cond:
            self._unfinished.discard(ticket)

    def _withdraw(self, ticket: Ticket) -> None:
        """A cancelled ticket still in the queue leaves it now (one in the batch leaves at the next step)."""
        with self._cond:
            try:
                self._waiting.remove(ticket)
            except ValueError:
                return
            self.stats.cancelled += 1
            self._cond.notify_all()
        ticket.finish("cancelled")

    # -- the worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._waiting:
                        if self._closing or (
                            not self._cond.wait(self.idle_exit) and not self._waiting
                        ):
                            self._thread = None  # under the lock: a later submit starts a new worker
                            return
                    self._gather()
                self._run_batch()
        except BaseException as error:
            # A failure outside a batch's own guard (building the decoder, say) would otherwise kill
            # the thread with ``_thread`` still set: every later request would wait for its timeout.
            # Fail the waiting requests now, with the error, and let the next submit start afresh.
            logger.exception("The micro-batcher's worker failed; failing the waiting requests.")
            with self._cond:
                self._thread = None
                failed = list(self._waiting)
                self._waiting.clear()
                self._cond.notify_all()
            for ticket in failed:
                ticket.finish("error", error)
            if not isinstance(error, Exception):
                raise

    def _gather(self) -> None:
        """Wait (holding the condition) for companions: the window, or a :meth:`hold`."""
        deadline = time.monotonic() + self.window
        while len(self._waiting) < self.max_batch_size:
            now = time.monotonic()
            holds = [h.deadline for h in self._holds if self._arrivals < h.target]
            remaining = max([deadline, *holds]) - now
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _take(self, count: int) -> list[Ticket]:
        with self._cond:
            taken: list[Ticket] = []
            while self._waiting and len(taken) < count:
                taken.append(self._waiting.popleft())
            if taken:
                self._cond.notify_all()  # room in the queue for waiting submitters
            return taken

    def _run_batch(self) -> None:
        model = self._model()
        if model is None:
            for ticket in self._take(len(self._waiting)):
                ticket.finish("error", RuntimeError("The model was freed while requests waited."))
            return
        decoder = BatchDecoder(model, layer_path=self.layer_path)
        # Finishes of the last rows are held until the hooks are gone and the lock is released, so a
        # caller that sees its reply end can rely on an idle, unhooked model.
        finished: list[tuple[Ticket, str, BaseException | None]] = []
        try:
            with model_lock(model):
                try:
                    while True:
                        free = decoder.free_slots(self.max_batch_size)
                        admitted = self._take(free) if free else []
                        if admitted:
                            self.stats.joins += len(admitted) if decoder.rows else 0
                            self.stats.requests += len(admitted)
                            decoder.admit(admitted)
                        if not decoder.rows or self._closing:
                            finished.extend((t, "cancelled", None) for t in decoder.abort())
                            break
                        self.stats.steps += 1
                        self.stats.row_steps += len(decoder.rows)
                        self.stats.largest_batch = max(self.stats.largest_batch, len(decoder.rows))
                        stepped = decoder.step()
                        self.stats.cancelled += sum(reason == "cancelled" for _, reason, _ in stepped)
                        finished.extend(stepped)
                        if decoder.rows or self._waiting:
                            _finish_all(finished)
                            finished = []
                finally:
                    decoder.close()
        except Exception as error:  # noqa: BLE001 - every row in flight learns about it
            logger.exception("Batched decoding failed; failing the rows in flight.")
            finished.extend((ticket, "error", error) for ticket in decoder.abort())
        finally:
            _finish_all(finished)


async def submit_when_room(
    submit: Callable[..., Ticket], request: GenerationRequest, queue_full: QueueFull
) -> Ticket:
    """Submit ``request`` for the running event loop, waiting for room in the queue without blocking it.

    With ``queue_full="error"`` a full queue raises at once. Polling keeps the wait cancellable and off the
    batcher's lock.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            return submit(request, loop=loop, block=False)
        except QueueFullError:
            if queue_full == "error":
                raise
        await asyncio.sleep(0.01)


def _finish_all(finished: list[tuple[Ticket, str, BaseException | None]]) -> None:
    for ticket, reason, error in finished:
        ticket.finish(reason, error)


def _check_count(name: str, value: Any, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise ValueError(f"{name} must be an integer from 1 to {limit}, not {value!r}.")


def check_batching(max_batch_size: Any, window: Any, max_queue: Any, queue_full: Any) -> None:
    """Validate micro-batching settings, with errors that say the allowed range.

    Raises:
        ValueError: a setting out of range or of the wrong type.
    """
    _check_count("max_batch_size", max_batch_size, MAX_BATCH_SIZE_LIMIT)
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not 0 <= window <= 1:
        raise ValueError(f"The batching window must be 0 to 1 second, not {window!r}.")
    _check_count("max_queue", max_queue, MAX_QUEUE_LIMIT)
    if queue_full not in ("wait", "error"):
        raise ValueError(f"queue_full must be 'wait' or 'error', not {queue_full!r}.")


_live: weakref.WeakSet[MicroBatcher] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Daemon worker threads are killed at interpreter exit; one killed inside a torch op aborts the
    # process ("terminate called without an active exception"). Stop them first.
    for batcher in list(_live):
        batcher.close(timeout=10.0)


_batchers: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], MicroBatcher]] = (
    weakref.WeakKeyDictionary()
)
_batchers_lock = threading.Lock()


def _evict(batcher: MicroBatcher) -> None:
    """Drop ``batcher`` from the shared registry, so that :func:`batcher_for` builds a new one."""
    model = batcher._model()
    if model is None:
        return
    with _batchers_lock:
        per_model = _batchers.get(model, {})
        for key, shared in list(per_model.items()):
            if shared is batcher:
                del per_model[key]


def batcher_for(
    model: Any,
    *,
    max_batch_size: int = 8,
    window: float = 0.005,
    max_queue: int = 256,
    queue_full: QueueFull = "wait",
    layer_path: str | None = None,
) -> MicroBatcher:
    """The process-wide :class:`MicroBatcher` for ``model`` with these settings.

    Every caller with the same model object and settings shares one batcher, so their requests batch
    together. Different settings get different batchers, which take turns on the model. ``layer_path`` is
    the explicit path to the decoder blocks, for models whose layers are not found automatically.
    """
    key = (max_batch_size, float(window), max_queue, queue_full, layer_path)
    with _batchers_lock:
        per_model = _batchers.setdefault(model, {})
        batcher = per_model.get(key)
        if batcher is None:
            batcher = per_model[key] = MicroBatcher(
                model,
                max_batch_size=max_batch_size,
                window=window,
                max_queue=max_queue,
                queue_full=queue_full,
                layer_path=layer_path,
            )
        return batcher
