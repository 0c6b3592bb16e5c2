"""One chat completion: an OpenAI request in, ``SteeredChatModel`` tokens out, OpenAI's shapes back.

There is no second generation path: every request goes through the server's one
:class:`~langchain_steer.SteeredChatModel` and so through its micro-batcher, which decodes concurrent
requests, each with its own strengths, in shared forward passes.

**Which strengths.** ``preference_mode="select"`` (the default) steers with the user's stored preferences
overridden by the request's ``steering``. ``"learn"`` first runs the preference agent's LEARN step
(:func:`~langchain_steer.agent.nodes.learn_preferences`) on the conversation's newest user turns, stores
what it learned for the user, then steers with it (and the request's ``steering`` on top). Without a
``user`` nothing is read or stored, and only the request's ``steering`` applies.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_steer.server.protocol import ChatCompletionRequest, Message, RequestError

__all__ = ["Completion", "chat_messages", "chunk_events", "completion_body", "model_kwargs"]


@dataclass(frozen=True)
class Completion:
    """What a request resolved to before generation: the messages, the call's keywords, the strengths."""

    messages: list[BaseMessage]
    kwargs: dict[str, Any]
    strengths: dict[str, float]
    model: str
    learned: list[dict[str, Any]] | None = None
    """In ``learn`` mode, what moved and why (``dimension``, ``before``, ``after``, ``because``)."""

    def extra(self) -> dict[str, Any]:
        """Our extension fields of a response: the applied ``steering``, and ``learned`` in learn mode."""
        return {"steering": self.strengths, **({"learned": self.learned} if self.learned is not None else {})}


def _tool_calls(message: Message) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(message.tool_calls or []):
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError as error:
            raise RequestError(
                f"messages: tool call {index} has arguments that are not JSON: {error}",
                param="messages",
            ) from None
        calls.append(
            {"name": function.get("name", ""), "args": arguments, "id": call.get("id") or f"call_{index}"}
        )
    return calls


def chat_messages(messages: list[Message]) -> list[BaseMessage]:
    """OpenAI messages as LangChain messages (``developer`` is a system message)."""
    converted: list[BaseMessage] = []
    for message in messages:
        text = message.text()
        if message.role in ("system", "developer"):
            converted.append(SystemMessage(text))
        elif message.role == "user":
            converted.append(HumanMessage(text))
        elif message.role == "assistant":
            converted.append(AIMessage(text, tool_calls=_tool_calls(message)))
        else:
            if not message.tool_call_id:
                raise RequestError("A tool message needs its tool_call_id.", param="messages")
            converted.append(ToolMessage(text, tool_call_id=message.tool_call_id))
    return converted


def _response_schema(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise RequestError(
                "response_format.json_schema.schema must be a JSON schema object.", param="response_format"
            )
        return schema
    raise RequestError(
        f"response_format type {kind!r} is not supported: use 'text', 'json_object' or 'json_schema'.",
        param="response_format",
    )


def model_kwargs(request: ChatCompletionRequest) -> dict[str, Any]:
    """The per-call keyword arguments of ``SteeredChatModel`` that the request sets."""
    kwargs: dict[str, Any] = {}
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "seed"):
        if getattr(request, name) is not None:
            kwargs[name] = getattr(request, name)
    if request.stop:
        kwargs["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.tools:
        for index, tool in enumerate(request.tools):
            if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
                raise RequestError(
                    f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}.",
                    param="tools",
                )
        kwargs["tools"] = request.tools
        kwargs["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        schema = _response_schema(request.response_format)
        if schema is not None:
            kwargs["response_format"] = schema
    return kwargs


def _message_body(message: AIMessage | AIMessageChunk) -> dict[str, Any]:
    body: dict[str, Any] = {"role": "assistant", "content": message.content or None}
    if message.tool_calls:
        body["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for call in message.tool_calls
        ]
    if body["content"] is None and not message.tool_calls:
        body["content"] = ""
    return body


def _usage(message: AIMessage | AIMessageChunk) -> dict[str, int]:
    usage = message.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "total_tokens": usage["total_tokens"],
    }


def completion_body(message: AIMessage, completion: Completion) -> dict[str, Any]:
    """The ``chat.completion`` object for a finished reply, with the applied ``steering``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": _message_body(message),
                "finish_reason": message.response_metadata.get("finish_reason", "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(message),
        **completion.extra(),
    }


async def chunk_events(
    chunks: AsyncIterator[AIMessageChunk], completion: Completion, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's ``chat.completion.chunk`` format, ending with ``data: [DONE]``.

    Text arrives as it is decoded. A tool call arrives as one delta per call (the chat model parses a call
    once it is complete, so its arguments come whole).
    """
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": completion.model,
    }

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    last: AIMessageChunk | None = None
    async for chunk in chunks:
        last = chunk
        if chunk.content:
            yield event([{"index": 0, "delta": {"content": chunk.content}, "finish_reason": None}])
        for index, call in enumerate(chunk.tool_call_chunks):
            delta = {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["args"] or ""},
                    }
                ]
            }
            yield event([{"index": 0, "delta": delta, "finish_reason": None}])
    finish = last.response_metadata.get("finish_reason", "stop") if last is not None else "stop"
    yield event(
        [{"index": 0, "delta": {}, "finish_reason": finish}], **completion.extra()
    )
    if include_usage and last is not None:
        yield event([], usage=_usage(last))
    yield "data: [DONE]\n\n"
