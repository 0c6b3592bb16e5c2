"""The wire format: OpenAI's chat-completions schemas, plus the steering and preference extensions.

Requests are validated here, before any work starts; the bounds come from the server's
:class:`~langchain_steer.server.settings.Limits` through :func:`check_request`. Responses are plain dicts in
OpenAI's shapes (``chat.completion``, ``chat.completion.chunk``, ``{"error": ...}``) so that the official
``openai`` SDK and ``langchain-openai`` read them unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langchain_steer.hooks import MAX_STRENGTH
from langchain_steer.server.settings import Limits

__all__ = [
    "ChatCompletionRequest",
    "Message",
    "Preferences",
    "RequestError",
    "check_request",
    "error_body",
]


class RequestError(ValueError):
    """Bad input, reported as an OpenAI error object with ``status`` (4xx) and the offending ``param``."""

    def __init__(
        self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.code = code


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class Message(BaseModel):
    """One chat message, as OpenAI sends it (text parts only)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text: a string, or its ``text`` parts joined."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        parts = []
        for part in self.content:
            if part.get("type") != "text":
                raise RequestError(
                    f"Only text content parts are supported, not {part.get('type')!r}.", param="messages"
                )
            parts.append(str(part.get("text", "")))
        return "".join(parts)


class StreamOptions(BaseModel):
    """``stream_options``: only ``include_usage`` is read."""

    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


def _finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number.")
    return value


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: OpenAI's fields, plus ``steering`` and ``preference_mode``."""

    model_config = ConfigDict(extra="ignore")

    messages: list[Message]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    steering: dict[str, float] | None = None
    preference_mode: Literal["select", "learn"] = "select"

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float | None) -> float | None:
        return _finite("temperature", value)

    @field_validator("top_p")
    @classmethod
    def _top_p(cls, value: float | None) -> float | None:
        return _finite("top_p", value)


class Preferences(BaseModel):
    """``PUT /v1/users/{user}/preferences``: strengths by dimension, each from −1 to 1."""

    model_config = ConfigDict(extra="forbid")

    preferences: dict[str, float] = Field(default_factory=dict)


def check_strengths(strengths: dict[str, float], known: list[str], param: str) -> dict[str, float]:
    """Validate strengths against the loaded dimensions and the strength bound.

    Raises:
        RequestError: an unknown dimension, or a strength that is not finite or out of range.
    """
    for name, value in strengths.items():
        if name not in known:
            raise RequestError(
                f"Unknown steering dimension {name!r}; known: {', '.join(known) or 'none'}.",
                param=param,
                code="unknown_dimension",
            )
        if isinstance(value, bool) or not math.isfinite(value) or abs(value) > MAX_STRENGTH:
            raise RequestError(
                f"Strength {name}={value!r} must be a finite number from -{MAX_STRENGTH:g} to "
                f"{MAX_STRENGTH:g}.",
                param=param,
            )
    return {name: float(value) for name, value in strengths.items()}


def check_request(request: ChatCompletionRequest, limits: Limits) -> None:
    """Apply the server's limits to a parsed request.

    Raises:
        RequestError: the first limit the request breaks, naming the field.
    """
    if not request.messages:
        raise RequestError("messages must hold at least one message.", param="messages")
    if len(request.messages) > limits.max_messages:
        raise RequestError(
            f"{len(request.messages)} messages is more than the limit of {limits.max_messages}.",
            param="messages",
        )
    for message in request.messages:
        if len(message.text()) > limits.max_message_chars:
            raise RequestError(
                f"A message is longer than the limit of {limits.max_message_chars} characters.",
                param="messages",
            )
    if request.n not in (None, 1):
        raise RequestError("Only n=1 is supported.", param="n")
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None and not 1 <= value <= limits.max_tokens:
            raise RequestError(f"{name} must be from 1 to {limits.max_tokens}.", param=name)
    stops = [request.stop] if isinstance(request.stop, str) else (request.stop or [])
    if len(stops) > limits.max_stop:
        raise RequestError(f"At most {limits.max_stop} stop strings are allowed.", param="stop")
    if request.tools is not None and len(request.tools) > limits.max_tools:
        raise RequestError(f"At most {limits.max_tools} tools are allowed.", param="tools")
    for name in ("tools", "response_format"):
        value = getattr(request, name)
        if value is not None and len(json.dumps(value)) > limits.max_schema_bytes:
            raise RequestError(
                f"{name} is larger than the limit of {limits.max_schema_bytes} bytes.", param=name
            )
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise RequestError("temperature must be from 0 to 2.", param="temperature")
    if request.top_p is not None and not 0 < request.top_p <= 1:
        raise RequestError("top_p must be in (0, 1].", param="top_p")
