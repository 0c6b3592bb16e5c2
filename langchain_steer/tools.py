"""Tool calling and structured output that cannot fail to parse: grammar-constrained decoding.

When a call must produce JSON, for structured output or a forced tool call, generation is constrained by
`xgrammar <https://github.com/mlc-ai/xgrammar>`_. A logits processor masks every token that would leave the
grammar, so the text is valid against the schema by construction, even from a 135M model. xgrammar was chosen
because it compiles a JSON schema in about 0.1 s on a CPU, it plugs into HF ``generate`` as a logits
processor, and its per-token cost is a bitmask.

A tool call is written as ``{"name": "<tool>", "arguments": {...}}``. With ``tool_choice="any"`` (or a tool's
name) the whole reply is one such object: the grammar is the union of one object per tool, each with its
own argument schema. With ``"auto"`` the model writes freely, and calls a tool in the native form that
SmolLM2, Qwen and Hermes-style models use, ``<tool_call>{...}</tool_call>``. The grammar is then an xgrammar
*structural tag*: free text, until ``<tool_call>`` is written; from there, the call's JSON under the tools'
schemas, then ``</tool_call>``. :class:`CallGuard` lets the free text stream, holding back only what could
be the start of a call, and :func:`split_tool_calls` reads the calls out of the finished reply.

The tokenizer info and compiler are cached per tokenizer, and compiled grammars per schema text (LRU). A
schema that xgrammar cannot compile raises a ``ValueError`` that names the schema.
"""

from __future__ import annotations

import json
import threading
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from langchain_core.messages import ToolCall

__all__ = [
    "TOOL_CALL_BEGIN",
    "TOOL_CALL_END",
    "CallGuard",
    "Constraint",
    "ReplyRepetitionPenalty",
    "ToolChoice",
    "bound_schema",
    "compile_auto_tool_calls",
    "compile_json_schema",
    "compile_tool_calls",
    "logits_processor",
    "normalise_tool_choice",
    "parse_tool_calls",
    "reply_constraint",
    "split_tool_calls",
    "tool_prompt",
]

TOOL_CALL_BEGIN = "<tool_call>"
"""Where a tool call starts in a reply under ``tool_choice="auto"``."""
TOOL_CALL_END = "</tool_call>"
"""Where it ends."""

ToolChoice = Literal["auto", "any", "none"] | str

_compilers: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()
_compilers_lock = threading.Lock()


def _compiler(tokenizer: Any, vocab_size: int) -> Any:
    import xgrammar as xgr

    with _compilers_lock:
        entry = _compilers.get(tokenizer)
        if entry is None or entry[0] != vocab_size:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
            entry = (vocab_size, xgr.GrammarCompiler(info, max_threads=2))
            _compilers[tokenizer] = entry
        return entry[1]


@lru_cache(maxsize=128)
def _grammar(schema_text: str) -> Any:
    import xgrammar as xgr

    try:
        return xgr.Grammar.from_json_schema(schema_text, any_whitespace=False, strict_mode=True)
    except Exception as error:  # xgrammar raises RuntimeError / InvalidJSONError / ValueError
        raise ValueError(
            f"This JSON schema cannot be compiled into a decoding grammar: {error}. "
            f"Schema: {schema_text[:500]}"
        ) from error


def _compile(tokenizer: Any, vocab_size: int, grammar: Any) -> Any:
    try:
        return _compiler(tokenizer, vocab_size).compile_grammar(grammar)
    except Exception as error:
        raise ValueError(f"Could not compile the decoding grammar: {error}") from error


MAX_ITEMS = 5
"""``maxItems`` given to arrays that a schema leaves unbounded."""
MAX_LENGTH = 100
"""``maxLength`` given to free strings that a schema leaves unbounded."""
MAX_INTEGER = 10**12 - 1
"""``maximum`` (and ``-minimum``) given to integers that a schema leaves unbounded: 12 digits at most."""


def bound_schema(schema: Any) -> Any:
    """Copy ``schema``, bounding unbounded arrays, free strings and integers.

    Small models greedily repeat list items, words or digits until ``max_tokens`` cuts the JSON short. Bounds
    (:data:`MAX_ITEMS` items, :data:`MAX_LENGTH` characters, integers within ±:data:`MAX_INTEGER`) keep a
    constrained reply short enough to close. A schema's own bounds always win, and strings with an ``enum``,
    ``const``, ``pattern`` or ``format`` are left alone.
    """
    if isinstance(schema, list):
        return [bound_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bound_schema(value) for key, value in schema.items()}
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds and "maxItems" not in schema:
        bounded["maxItems"] = max(MAX_ITEMS, int(schema.get("minItems", 0)))
    free = not any(key in schema for key in ("enum", "const", "pattern", "format", "maxLength"))
    if "string" in kinds and free:
        bounded["maxLength"] = max(MAX_LENGTH, int(schema.get("minLength", 0)))
    if "integer" in kinds and not any(key in schema for key in ("enum", "const")):
        if "maximum" not in schema and "exclusiveMaximum" not in schema:
            bounded["maximum"] = MAX_INTEGER
        if "minimum" not in schema and "exclusiveMinimum" not in schema:
            bounded["minimum"] = -MAX_INTEGER
    return bounded


def compile_json_schema(tokenizer: Any, vocab_size: int, schema: dict[str, Any]) -> Any:
    """Compile ``schema`` into an xgrammar ``CompiledGrammar`` for this tokenizer.

    Raises:
        ValueError: the schema is not valid JSON schema, or xgrammar cannot compile it.
    """
    return _compile(tokenizer, vocab_size, _grammar(json.dumps(bound_schema(schema))))


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def compile_tool_calls(tokenizer: Any, vocab_size: int, tools: Sequence[dict[str, Any]]) -> Any:
    """Compile the grammar of one call to any of ``tools`` (OpenAI tool dicts).

    Raises:
        ValueError: a tool's parameter schema cannot be compiled; the message names the tool.
    """
    import xgrammar as xgr

    grammars = []
    for tool in tools:
        try:
            grammars.append(_grammar(json.dumps(bound_schema(_call_schema(tool)))))
        except ValueError as error:
            raise ValueError(f"Tool {tool['function']['name']!r}: {error}") from error
    grammar = grammars[0] if len(grammars) == 1 else xgr.Grammar.union(*grammars)
    return _compile(tokenizer, vocab_size, grammar)


def _auto_structural_tag(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    schema = {"anyOf": [bound_schema(_call_schema(tool)) for tool in tools]}
    return {
        "type": "structural_tag",
        "format": {
            "type": "triggered_tags",
            "triggers": [TOOL_CALL_BEGIN],
            "tags": [
                {
                    "type": "tag",
                    "begin": TOOL_CALL_BEGIN,
                    "content": {"type": "json_schema", "json_schema": schema},
                    "end": TOOL_CALL_END,
                }
            ],
        },
    }


def compile_auto_tool_calls(
    tokenizer: Any, vocab_size: int, tools: Sequence[dict[str, Any]]
) -> Any:
    """Compile the ``"auto"`` grammar: free text, and from ``<tool_call>`` on, a call to one of ``tools``.

    Raises:
        ValueError: a tool's parameter schema cannot be compiled.
    """
    try:
        return _compiler(tokenizer, vocab_size).compile_structural_tag(_auto_structural_tag(tools))
    except Exception as error:  # xgrammar raises its own error types
        raise ValueError(f"Could not compile the tool-call grammar: {error}") from error


@dataclass(frozen=True)
class Constraint:
    """The grammar a reply must match, in a form every engine can compile.

    Attributes:
        kind: ``"json"`` (``spec`` is a JSON schema) or ``"structural_tag"`` (``spec`` is an xgrammar
            structural tag: free text, and a schema-constrained call once its begin tag appears).
        spec: the schema or the tag, already bounded (:func:`bound_schema`).
    """

    kind: Literal["json", "structural_tag"]
    spec: dict[str, Any]
    grammar: str | None = None
    """For ``"json"``: the EBNF of the exact grammar the HF engine compiles, so that every engine
    constrains the reply alike (a JSON schema leaves layout choices to the grammar compiler)."""


def reply_constraint(
    tools: Sequence[dict[str, Any]], choice: str, response_format: dict[str, Any] | None
) -> Constraint | None:
    """What a reply must match for this tool choice or response format; ``None`` for free text.

    A forced choice (a tool's name or ``"any"``) must be one call to one of those tools; ``"auto"`` is free
    text with calls constrained from ``<tool_call>`` on; a ``response_format`` schema constrains the whole
    reply. The HF engine compiles the same grammars with :func:`compile_tool_calls`,
    :func:`compile_auto_tool_calls` and :func:`compile_json_schema`.
    """
    import xgrammar as xgr

    if tools and choice not in ("auto", "none"):
        forced = [t for t in tools if choice == "any" or t["function"]["name"] == choice]
        schemas = [bound_schema(_call_schema(tool)) for tool in forced]
        grammars = [_grammar(json.dumps(schema)) for schema in schemas]
        union = grammars[0] if len(grammars) == 1 else xgr.Grammar.union(*grammars)
        spec = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        return Constraint("json", spec, str(union))
    if tools and choice == "auto":
        return Constraint("structural_tag", _auto_structural_tag(tools))
    if response_format is not None:
        schema = bound_schema(response_format)
        return Constraint("json", schema, str(_grammar(json.dumps(schema))))
    return None


class CallGuard:
    """Splits a streamed ``"auto"`` reply into text to show now and a tool call to keep back.

    Text streams as it comes, except a tail that could still grow into ``<tool_call>``. From the point a
    call starts, nothing more is shown: the call is read whole at the end (:func:`split_tool_calls`).
    """

    def __init__(self) -> None:
        self.text = ""
        self.shown = 0
        self.in_call = False

    def feed(self, piece: str) -> str:
        """Add newly decoded text; return the part that can be shown now (possibly empty)."""
        self.text += piece
        if self.in_call:
            return ""
        start = self.text.find(TOOL_CALL_BEGIN)
        if start >= 0:
            self.in_call = True
            return self._show(start)
        hold = next(
            (n for n in range(len(TOOL_CALL_BEGIN) - 1, 0, -1) if self.text.endswith(TOOL_CALL_BEGIN[:n])),
            0,
        )
        return self._show(len(self.text) - hold)

    def close(self) -> str:
        """The end of the reply: whatever was held back and turned out not to be a call."""
        return "" if self.in_call else self._show(len(self.text))

    def _show(self, end: int) -> str:
        piece, self.shown = self.text[self.shown : max(end, self.shown)], max(end, self.shown)
        return piece


def split_tool_calls(text: str, tools: Sequence[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
    """``(the text outside any <tool_call> tags, the calls inside them)`` of a finished reply.

    A tag whose content is not a call to a bound tool stays in the text, so nothing the model wrote is lost.
    """
    calls: list[ToolCall] = []
    kept: list[str] = []
    rest = text
    while TOOL_CALL_BEGIN in rest:
        before, _, after = rest.partition(TOOL_CALL_BEGIN)
        body, closed, rest = after.partition(TOOL_CALL_END)
        parsed = parse_tool_calls(body, tools)
        kept.append(before)
        if parsed:
            calls.extend(parsed)
        else:
            kept.append(TOOL_CALL_BEGIN + body + closed)
    kept.append(rest)
    return "".join(kept).strip() if calls else text, calls


class ReplyRepetitionPenalty:
    """HF-style repetition penalty that only counts tokens of the reply, never of the prompt.

    HF's own ``repetition_penalty`` also penalises every prompt token. A tool call or a structured reply
    usually copies values from the prompt ("magic_function(3)" → ``{"input": 3}``), so that penalty pushes
    the model away from the right answer. This one only discourages the loops a small model falls into
    within its own reply.
    """

    def __init__(self, prompt_length: int, penalty: float) -> None:
        self.prompt_length = prompt_length
        self.penalty = penalty

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Divide positive (multiply negative) scores of tokens already in the reply by the penalty."""
        reply = input_ids[:, self.prompt_length :]
        if reply.shape[1] == 0 or self.penalty == 1.0:
            return scores
        seen = scores.gather(1, reply)
        seen = seen.where(seen < 0, seen / self.penalty).where(seen >= 0, seen * self.penalty)
        return scores.scatter(1, reply, seen)


def logits_processor(compiled: Any) -> Any:
    """A fresh HF logits processor for one ``generate`` call (xgrammar's are single-use)."""
    from xgrammar.contrib.hf import LogitsProcessor

    return LogitsProcessor(compiled)


def normalise_tool_choice(
    tool_choice: Any, tools: Sequence[dict[str, Any]]
) -> Literal["auto", "any", "none"] | str:
    """Map every form LangChain accepts to ``"auto"``, ``"any"``, ``"none"`` or a tool name.

    Accepts ``None``/``"auto"``, ``"any"``/``"required"``/``True``, ``"none"``/``False``, a tool name, and
    ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ValueError: an unknown tool name or form.
    """
    names = [t["function"]["name"] for t in tools]
    if tool_choice in (None, "auto"):
        return "auto"
    if tool_choice in ("any", "required", True):
        return "any"
    if tool_choice in ("none", False):
        return "none"
    if isinstance(tool_choice, dict):
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in names:
        return tool_choice
    raise ValueError(
        f"tool_choice={tool_choice!r} is not valid: use 'auto', 'any', 'none' or one of {names}."
    )


def tool_prompt(tools: Sequence[dict[str, Any]], choice: str = "any") -> str:
    """The system text that tells the model which tools it has and how to call one.

    Under ``"auto"`` it asks for the native ``<tool_call>{...}</tool_call>`` form and plain text otherwise;
    for a forced call (``"any"`` or a name), for the bare JSON object the grammar then requires.
    """
    if choice == "auto":
        how = (
            f"If a tool can answer the request, call it by replying with {TOOL_CALL_BEGIN}"
            f'{{"name": <tool name>, "arguments": {{<arguments>}}}}{TOOL_CALL_END}. If no tool fits, or a '
            "tool's result is already in the conversation, answer in plain text."
        )
    else:
        how = (
            "To call one, reply with only a JSON object of the form "
            '{"name": <tool name>, "arguments": {<arguments>}}.'
        )
    lines = [f"You can call these tools. {how}", "Tools:"]
    for tool in tools:
        function = tool["function"]
        parameters = json.dumps(function.get("parameters") or {}, ensure_ascii=False)
        lines.append(
            f"- {function['name']}: {function.get('description', '')} Parameters: {parameters}"
        )
    return "\n".join(lines)


def parse_tool_calls(text: str, tools: Sequence[dict[str, Any]]) -> list[ToolCall] | None:
    """Read ``text`` as one tool call, or a JSON list of them; ``None`` when it is not a call.

    Only names of the bound tools count, so ordinary JSON answers are left as text.
    """
    names = {t["function"]["name"] for t in tools}
    try:
        data = json.loads(text.strip())
    except ValueError:
        return None
    items = data if isinstance(data, list) else [data]
    calls: list[ToolCall] = []
    for item in items:
        if not (isinstance(item, dict) and item.get("name") in names):
            return None
        arguments = item.get("arguments", item.get("parameters", {}))
        if not isinstance(arguments, dict):
            return None
        calls.append(
            ToolCall(
                name=item["name"],
                args=arguments,
                id=f"call_{uuid.uuid4().hex[:24]}",
                type="tool_call",
            )
        )
    return calls or None
