"""The HTTP routes: thin functions that check access, call the library, and map errors to status codes.

Blocking work (the store, the LEARN step, loading) runs on the thread pool, and generation through the
chat model's async methods, so the event loop is never blocked.
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from langchain_core.messages import AIMessageChunk
from starlette.concurrency import run_in_threadpool

from langchain_steer.server.app import ServerState
from langchain_steer.server.calibration import CalibrationAnswer, CalibrationStart
from langchain_steer.server.completions import (
    Completion,
    chat_messages,
    chunk_events,
    completion_body,
    model_kwargs,
)
from langchain_steer.server.protocol import (
    ChatCompletionRequest,
    Preferences,
    RequestError,
    check_request,
    check_strengths,
)
from langchain_steer.server.settings import ANY_USER, check_user

__all__ = ["router"]

router = APIRouter()


def _state(request: Request) -> ServerState:
    return request.app.state.server


def authorise(request: Request) -> frozenset[str] | None:
    """The users the caller's key may act for (``None``: the server needs no key).

    Raises:
        RequestError: 401 for a missing or unknown key.
    """
    keys = _state(request).settings.api_keys
    if not keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise RequestError("Missing API key: send 'Authorization: Bearer <key>'.", status=401)
    allowed: frozenset[str] | None = None
    for key, users in keys.items():  # every key is compared, each in constant time
        if hmac.compare_digest(key.encode(), token.encode()):
            allowed = users
    if allowed is None:
        raise RequestError("Invalid API key.", status=401, code="invalid_api_key")
    return allowed


Allowed = Annotated[frozenset[str] | None, Depends(authorise)]


def _user(user: str, allowed: frozenset[str] | None, param: str = "user") -> str:
    try:
        check_user(user)
    except ValueError as error:
        raise RequestError(str(error), param=param) from None
    if allowed is not None and ANY_USER not in allowed and user not in allowed:
        raise RequestError(f"This API key may not act for user {user!r}.", status=403, param=param)
    return user


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: the model is loaded and the store answers."""
    state = getattr(request.app.state, "server", None)
    if state is None:
        return JSONResponse({"status": "starting"}, 503)
    try:
        await run_in_threadpool(state.store.ping)
    except Exception:  # noqa: BLE001 - any store failure means not ready
        return JSONResponse({"status": "store unavailable"}, 503)
    return JSONResponse({"status": "ready", "model": state.settings.model})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics, in the text exposition format."""
    return Response(_state(request).metrics.text(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models")
async def models(request: Request, _: Allowed) -> dict[str, Any]:
    """The one model this server serves, in OpenAI's list format."""
    name = _state(request).settings.model
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "langchain-steer"}],
    }


@router.get("/v1/steering/dimensions")
async def dimensions(request: Request, _: Allowed) -> dict[str, Any]:
    """Every loaded dimension: its poles, strength range and steered layers."""
    vectors = _state(request).llm._get_vectors()
    return {
        "object": "list",
        "data": [
            {
                "name": name,
                "poles": {"negative": vector.poles[0], "positive": vector.poles[1]},
                "range": [-1.0, 1.0],
                "layers": vector.layers,
            }
            for name, vector in vectors.items()
        ],
    }


@router.get("/v1/users/{user}/preferences")
async def get_preferences(
    user: str, request: Request, allowed: Allowed
) -> dict[str, Any]:
    """A user's stored preferences."""
    _user(user, allowed, "user")
    stored = await run_in_threadpool(_state(request).store.get, user)
    return {"user": user, "preferences": stored}


@router.put("/v1/users/{user}/preferences")
async def put_preferences(
    user: str, body: Preferences, request: Request, allowed: Allowed
) -> dict[str, Any]:
    """Replace a user's preferences (each from −1 to 1); durable when the response returns."""
    _user(user, allowed, "user")
    state = _state(request)
    values = check_strengths(body.preferences, state.dimensions, "preferences")
    if any(abs(v) > 1 for v in values.values()):
        raise RequestError("Preferences must be from -1 to 1.", param="preferences")
    await run_in_threadpool(state.store.put, user, values)
    return {"user": user, "preferences": values}


@router.delete("/v1/users/{user}/preferences")
async def delete_preferences(
    user: str, request: Request, allowed: Allowed
) -> dict[str, Any]:
    """Forget a user's preferences."""
    _user(user, allowed, "user")
    await run_in_threadpool(_state(request).store.delete, user)
    return {"user": user, "preferences": {}}


def _learn(
    state: ServerState, user: str, messages: list[Any]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from langchain_steer.agent.inference import default_inferencer
    from langchain_steer.agent.nodes import explain_learning

    learned, changes = explain_learning(
        default_inferencer(), messages, state.store.get(user), state.dimensions
    )
    state.store.put(user, learned)  # durable before the response returns
    return learned, [dataclasses.asdict(change) for change in changes]


@router.post("/v1/users/{user}/calibration")
async def start_calibration(
    user: str, body: CalibrationStart, request: Request, allowed: Allowed
) -> dict[str, Any]:
    """CALIBRATE: start an A/B session for ``user``; returns its first round."""
    state = _state(request)
    _user(user, allowed, "user")
    limits = state.settings.limits
    if not body.messages or len(body.messages) > limits.max_messages:
        raise RequestError(f"messages must hold 1 to {limits.max_messages} messages.", param="messages")
    if any(len(m.text()) > limits.max_message_chars for m in body.messages):
        raise RequestError(
            f"A message is longer than {limits.max_message_chars} characters.", param="messages"
        )
    messages = chat_messages(body.messages)
    return await run_in_threadpool(state.calibrations.start, user, messages, body)


@router.post("/v1/users/{user}/calibration/{session}")
async def answer_calibration(
    user: str, session: str, body: CalibrationAnswer, request: Request, allowed: Allowed
) -> dict[str, Any]:
    """CALIBRATE: answer the current round of ``session``; returns the next round, or the result."""
    state = _state(request)
    _user(user, allowed, "user")
    return await run_in_threadpool(state.calibrations.answer, user, session, body.choice)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, allowed: Allowed
) -> Any:
    """OpenAI's chat completions, steered per user (``steering``, ``preference_mode``, ``user``)."""
    state = _state(request)
    check_request(body, state.settings.limits)
    explicit = check_strengths(body.steering or {}, state.dimensions, "steering")
    messages = chat_messages(body.messages)
    kwargs = model_kwargs(body)
    preferences: dict[str, float] = {}
    learned: list[dict[str, Any]] | None = None
    if body.user is not None:
        user = _user(body.user, allowed)
        if body.preference_mode == "learn":
            preferences, learned = await run_in_threadpool(_learn, state, user, messages)
        else:
            preferences = await run_in_threadpool(state.store.get, user)
    elif body.preference_mode == "learn":
        raise RequestError("preference_mode 'learn' needs a user.", param="user")
    strengths = {
        k: v for k, v in {**preferences, **explicit}.items() if v and k in state.dimensions
    }
    completion = Completion(messages, kwargs, strengths, state.settings.model, learned)
    try:
        if not body.stream:
            message = await state.llm.ainvoke(messages, steering=strengths, **kwargs)
            result = completion_body(message, completion)
            state.metrics.count_tokens(result["usage"])
            return result
        chunks = state.llm.astream(messages, steering=strengths, **kwargs)
        # Start generating before answering, so that bad input is a 4xx, not a broken stream.
        first = await chunks.__anext__()
    except (ValueError, TypeError) as error:
        raise RequestError(str(error)) from None
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def replay() -> AsyncIterator[AIMessageChunk]:
        last = first
        yield first
        async for chunk in chunks:
            last = chunk
            yield chunk
        if last.usage_metadata:
            state.metrics.count_tokens(
                {
                    "prompt_tokens": last.usage_metadata["input_tokens"],
                    "completion_tokens": last.usage_metadata["output_tokens"],
                }
            )

    return StreamingResponse(
        chunk_events(replay(), completion, include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
