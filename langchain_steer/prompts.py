"""The one prompt renderer: chat turns to the text a model continues with its reply.

Generation (:func:`~langchain_steer.generate.generate_batch`), the chat model
(:func:`~langchain_steer.messages.render_prompt`), extraction and perplexity scoring
(:func:`render_example`) all render through :func:`render_chat`, so a vector is extracted from exactly the
prompt form it is later used under.

* With a chat template, the template renders the turns and the assistant's generation prompt. When the
  template knows tools (its text refers to ``tools``, as Qwen's and Llama's do; the demo model's, from its
  GGUF file, does not), ``tools=`` are passed to it, so the model sees them the way it was trained to.
* Without one (a base model), the turns become a plain transcript, one ``Role: content`` line per turn,
  ending with ``Assistant:``::

      System: Be brief.
      User: Plan a dinner.
      Assistant:
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_steer.dimensions.examples import Example

__all__ = ["Turn", "render_chat", "render_example", "supports_tools"]

Turn = Mapping[str, Any]
"""A chat turn: ``{"role": ..., "content": ...}`` (and tool fields a template may read)."""


def supports_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a ``tools`` list."""
    template = getattr(tokenizer, "chat_template", None)
    return isinstance(template, str) and "tools" in template


def render_chat(
    tokenizer: Any, turns: Sequence[Turn], *, tools: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """Render ``turns`` as the prompt for the assistant's next reply (see the module docstring).

    ``tools`` (OpenAI tool dicts) reach the chat template only when it supports them; otherwise the caller
    describes them in a system turn.
    """
    if getattr(tokenizer, "chat_template", None):
        extra = {"tools": [dict(t) for t in tools]} if tools and supports_tools(tokenizer) else {}
        return str(
            tokenizer.apply_chat_template(
                [dict(t) for t in turns], add_generation_prompt=True, tokenize=False, **extra
            )
        )
    lines = [f"{str(t['role']).capitalize()}: {t.get('content') or ''}" for t in turns]
    return "\n".join([*lines, "Assistant:"])


def render_example(
    tokenizer: Any, example: Example, system: str | None = None
) -> tuple[list[int], int]:
    """Tokenise ``example`` as a chat turn; return ``(token ids, index of the first reply token)``.

    The prefix is :func:`render_chat` of the optional ``system`` prompt and the request; the reply follows
    it as the model would write it (after a space in a plain transcript).
    """
    turns = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": example.prompt}
    ]
    prefix = render_chat(tokenizer, turns)
    template = bool(getattr(tokenizer, "chat_template", None))
    reply = example.response if template else f" {example.response}"
    special = not template  # a template already wrote BOS and role markers
    prefix_ids = tokenizer(prefix, add_special_tokens=special)["input_ids"]
    full_ids = tokenizer(prefix + reply, add_special_tokens=special)["input_ids"]
    start = len(prefix_ids)
    if full_ids[:start] != prefix_ids:
        # A tokenizer merged across the boundary; fall back to counting from the reply's own length.
        start = len(full_ids) - len(tokenizer(reply, add_special_tokens=False)["input_ids"])
    if start >= len(full_ids):
        raise ValueError(f"Example reply is empty after tokenisation: {example!r}")
    return list(full_ids), start
