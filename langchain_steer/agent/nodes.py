"""The preference agent's nodes: load, LEARN, SELECT and respond. Each is built by a small factory.

Every turn runs ``load`` → (``learn`` | ``select`` | the elicitation nodes of CALIBRATE) → ``respond``:

* ``load`` starts a new thread from the user's stored preferences (a LangGraph store, namespace
  ``("users", user_id, "preferences")``), or from zeros;
* ``learn`` reads the newest user turn(s) with the inferencer and applies the update rule;
* ``select`` takes the strengths from the runtime context (or from the state, set by an update);
* ``respond`` answers with :class:`~langchain_steer.SteeredChatModel`, steered by the preferences, and
  records the strengths applied in the state (``applied``) and in the reply's ``response_metadata``.

Explicit strengths in the runtime context (``AgentContext.strengths``) override the preferences in every
mode.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langgraph.runtime import Runtime

from langchain_steer.agent.inference import Inferencer, update_preferences
from langchain_steer.agent.state import AgentContext, PreferenceState, preference_namespace

__all__ = [
    "STORE_KEY",
    "learn_preferences",
    "explain_learning",
    "PreferenceChange",
    "Node",
    "clip_preferences",
    "latest_turns",
    "make_learn_node",
    "make_load_node",
    "make_respond_node",
    "make_select_node",
    "save_preferences",
]

logger = logging.getLogger(__name__)

STORE_KEY = "current"
"""The key of a user's preferences in their store namespace."""


class Node(Protocol):
    """A node of the preference graph: reads the state and the runtime, returns a state update."""

    def __call__(self, state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        """Return the state update."""
        ...


def clip_preferences(values: Mapping[str, Any], dimensions: Sequence[str]) -> dict[str, float]:
    """``values`` for every one of ``dimensions``, as floats in [−1, 1] (missing ones are 0).

    Raises:
        ValueError: a name that is not one of ``dimensions`` (a typo such as "cots" would otherwise
            steer nothing, silently), or a value that is not a finite number.
    """
    unknown = sorted(set(values) - set(dimensions))
    if unknown:
        raise ValueError(
            f"Unknown preference dimension {unknown[0]!r}; known: {', '.join(dimensions) or 'none'}."
        )
    clipped = {}
    for name in dimensions:
        value = values.get(name, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"Preference {name!r} must be a finite number, not {value!r}.")
        clipped[name] = max(-1.0, min(1.0, float(value)))
    return clipped


def _context(runtime: Runtime[AgentContext]) -> AgentContext:
    context = runtime.context
    if context is None:
        return AgentContext()
    if isinstance(context, Mapping):  # LangGraph servers pass the context as a plain dict
        return AgentContext(**context)
    return context


def save_preferences(runtime: Runtime[AgentContext], preferences: Mapping[str, float]) -> None:
    """Store a user's preferences, so that their next conversation starts from them."""
    if runtime.store is None:
        return
    namespace = preference_namespace(_context(runtime).user_id)
    runtime.store.put(namespace, STORE_KEY, {"preferences": dict(preferences)})


def make_load_node(dimensions: Sequence[str]) -> Node:
    """``load``: a thread without preferences starts from the user's stored ones (or zeros)."""

    def load(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        if state.get("preferences"):
            return {"preferences": clip_preferences(state["preferences"], dimensions)}
        stored: Mapping[str, Any] = {}
        if runtime.store is not None:
            item = runtime.store.get(preference_namespace(_context(runtime).user_id), STORE_KEY)
            if item is not None:
                stored = item.value.get("preferences", {})
        return {"preferences": clip_preferences(stored, dimensions)}

    return load


def latest_turns(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages since the last assistant reply, that reply included (the context of feedback)."""
    start = 0
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], AIMessage):
            start = index
            break
    return list(messages[start:])


@dataclass(frozen=True)
class PreferenceChange:
    """One value the LEARN step moved, and the user's words that moved it.

    Attributes:
        dimension: the dimension's name.
        before: its value before this turn.
        after: its value now.
        because: the clause (or the whole turn) that expressed it; ``""`` when the user cleared it.
    """

    dimension: str
    before: float
    after: float
    because: str


def learn_preferences(
    inferencer: Inferencer,
    messages: Sequence[BaseMessage],
    preferences: Mapping[str, float],
    dimensions: Sequence[str],
) -> dict[str, float]:
    """The LEARN step: update ``preferences`` from the user turns since the last assistant reply.

    Only the newest turns are read, so a conversation sent again with one more turn does not count its
    earlier turns twice. The server's ``learn`` mode runs this same step (through
    :func:`explain_learning`, which also says why each value moved).
    """
    return explain_learning(inferencer, messages, preferences, dimensions)[0]


def explain_learning(
    inferencer: Inferencer,
    messages: Sequence[BaseMessage],
    preferences: Mapping[str, float],
    dimensions: Sequence[str],
) -> tuple[dict[str, float], list[PreferenceChange]]:
    """:func:`learn_preferences`, plus one :class:`PreferenceChange` per value that moved, in order."""
    updated = clip_preferences(preferences, dimensions)
    first: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for reading in inferencer.read(latest_turns(messages)):
        after = clip_preferences(update_preferences(updated, reading, dimensions), dimensions)
        for name in dimensions:
            if after.get(name, 0.0) != updated.get(name, 0.0):
                first.setdefault(name, updated.get(name, 0.0))
                reasons[name] = "" if name in reading.cleared else reading.evidence.get(name, "")
        updated = after
    changes = [
        PreferenceChange(name, round(first[name], 4), round(updated.get(name, 0.0), 4), reasons[name])
        for name in dimensions
        if name in first and first[name] != updated.get(name, 0.0)
    ]
    return updated, changes


def make_learn_node(inferencer: Inferencer, dimensions: Sequence[str]) -> Node:
    """``learn``: read the newest user turn(s) and update the preferences (LEARN)."""

    def learn(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        preferences = learn_preferences(
            inferencer, state["messages"], state.get("preferences") or {}, dimensions
        )
        save_preferences(runtime, preferences)
        return {"preferences": preferences}

    return learn


def make_select_node(dimensions: Sequence[str]) -> Node:
    """``select``: the strengths come from the runtime context or from the state; no inference (SELECT)."""

    def select(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        preferences = clip_preferences(state.get("preferences") or {}, dimensions)
        explicit = _context(runtime).strengths
        if explicit:
            preferences = clip_preferences({**preferences, **explicit}, dimensions)
        save_preferences(runtime, preferences)
        return {"preferences": preferences}

    return select


def make_respond_node(
    llm: Any, dimensions: Sequence[str], system_prompt: str | None = None
) -> Node:
    """``respond``: answer the conversation with ``llm`` steered by the preferences."""

    def respond(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        preferences = dict(state.get("preferences") or {})
        explicit = _context(runtime).strengths
        if explicit:
            preferences.update(explicit)
        known = llm.steering_dimensions() if hasattr(llm, "steering_dimensions") else dimensions
        applied = {
            k: v for k, v in clip_preferences(preferences, dimensions).items() if v and k in known
        }
        messages: list[BaseMessage] = list(state["messages"])
        if system_prompt:
            messages = [SystemMessage(system_prompt), *messages]
        reply = llm.invoke(messages, steering=applied)
        return {"messages": [reply], "applied": applied}

    return respond
