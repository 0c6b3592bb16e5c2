"""Map LangChain messages onto a HuggingFace chat template.

Chat templates differ in what they accept. Some have no system role, some insist that user and assistant
alternate, and many know nothing of tools. :func:`render_prompt` first tries the messages as they are.
When the
template rejects them, or silently drops the system prompt, it normalises them:

* a ``SystemMessage`` is merged into the first user turn;
* a ``ToolMessage`` becomes a user turn that says which tool call it answers;
* consecutive turns of the same role are joined with a blank line.

An ``AIMessage`` with tool calls is rendered in the native ``<tool_call>{...}</tool_call>`` form (see
:mod:`langchain_steer.tools`), so the model sees its own earlier calls the way it writes them under
``tool_choice="auto"``. Rendering itself is
:func:`langchain_steer.prompts.render_chat`, the one renderer: models without a chat template get its plain
transcript, which has a line for every role, so nothing needs normalising there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_steer.prompts import render_chat
from langchain_steer.tools import TOOL_CALL_BEGIN, TOOL_CALL_END

__all__ = ["render_prompt", "to_chat_dicts"]

Turn = dict[str, Any]


def _text(content: str | list[Any]) -> str:
    """Flatten LangChain content blocks to text; non-text blocks are rejected."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") in ("tool_use", "tool_call"):
            continue  # rendered from AIMessage.tool_calls instead
        else:
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise ValueError(
                f"Content blocks of type {kind!r} are not supported: SteeredChatModel takes text only."
            )
    return "".join(parts)


def tool_call_json(name: str, arguments: Any) -> str:
    """The text form of one earlier tool call: the native ``<tool_call>{...}</tool_call>`` form."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_BEGIN}{body}{TOOL_CALL_END}"


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[Turn]:
    """Convert LangChain messages to ``[{"role", "content"}]`` turns, keeping tool metadata.

    Raises:
        ValueError: empty input, or an unsupported message or content type.
    """
    if not messages:
        raise ValueError("SteeredChatModel needs at least one message.")
    turns: list[Turn] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            turns.append({"role": "system", "content": _text(message.content)})
        elif isinstance(message, HumanMessage):
            turns.append({"role": "user", "content": _text(message.content)})
        elif isinstance(message, AIMessage):
            text = _text(message.content)
            calls = [tool_call_json(c["name"], c["args"]) for c in message.tool_calls]
            turns.append({"role": "assistant", "content": "\n".join(filter(None, [text, *calls]))})
        elif isinstance(message, ToolMessage):
            turns.append(
                {
                    "role": "tool",
                    "content": _text(message.content),
                    "tool_call_id": message.tool_call_id,
                    "name": message.name,
                }
            )
        elif isinstance(message, FunctionMessage):
            turns.append({"role": "tool", "content": _text(message.content), "name": message.name})
        elif isinstance(message, ChatMessage):
            role = {"human": "user", "ai": "assistant"}.get(message.role, message.role)
            turns.append({"role": role, "content": _text(message.content)})
        else:
            raise ValueError(f"Unsupported message type {type(message).__name__}.")
    return turns


def _normalise(turns: Sequence[Turn]) -> list[Turn]:
    """Rewrite turns into the plainest form: user/assistant only, alternating."""
    system = "\n\n".join(t["content"] for t in turns if t["role"] == "system" and t["content"])
    plain: list[Turn] = []
    for turn in turns:
        role, content = turn["role"], turn["content"]
        if role == "system":
            continue
        if role == "tool":
            label = turn.get("name") or "tool"
            call = f" (call {turn['tool_call_id']})" if turn.get("tool_call_id") else ""
            role, content = "user", f"Result of {label}{call}:\n{content}"
        elif role not in ("user", "assistant"):
            role = "user"
        if plain and plain[-1]["role"] == role:
            plain[-1] = {"role": role, "content": f"{plain[-1]['content']}\n\n{content}"}
        else:
            plain.append({"role": role, "content": content})
    if system:
        if plain and plain[0]["role"] == "user":
            plain[0] = {"role": "user", "content": f"{system}\n\n{plain[0]['content']}"}
        else:
            plain.insert(0, {"role": "user", "content": system})
    return plain


def _merge_consecutive(turns: Sequence[Turn]) -> list[Turn]:
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"] and turn["role"] in ("user", "system"):
            merged[-1] = {**merged[-1], "content": f"{merged[-1]['content']}\n\n{turn['content']}"}
        else:
            merged.append(dict(turn))
    return merged


def render_prompt(
    tokenizer: Any, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] | None = None
) -> str:
    """Render LangChain messages into the prompt text for the model's next assistant turn.

    ``tools`` reach a chat template that supports them (:func:`langchain_steer.prompts.render_chat`).
    """
    turns = _merge_consecutive(to_chat_dicts(messages))
    if not getattr(tokenizer, "chat_template", None):
        return render_chat(tokenizer, turns)
    try:
        text = render_chat(tokenizer, turns, tools=tools)
    except Exception:  # noqa: BLE001 - jinja templates raise anything (TemplateError, ValueError...)
        return render_chat(tokenizer, _normalise(turns), tools=tools)
    # Some templates accept a system or tool turn but silently drop it.
    dropped = any(t["content"] and t["content"] not in text for t in turns)
    return render_chat(tokenizer, _normalise(turns), tools=tools) if dropped else text
