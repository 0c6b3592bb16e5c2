"""The preference agent's state (checkpointed per thread) and runtime context (per call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import NotRequired, TypedDict

__all__ = ["AgentContext", "Mode", "PreferenceState", "merge_preferences", "preference_namespace"]

Mode = Literal["learn", "select", "calibrate"]


def merge_preferences(
    current: dict[str, float] | None, update: dict[str, float] | None
) -> dict[str, float]:
    """Reducer: an update sets the dimensions it names and keeps the others (send 0 to reset one)."""
    return {**(current or {}), **(update or {})}


class PreferenceState(TypedDict):
    """What the graph keeps for one conversation (thread).

    Attributes:
        messages: the conversation (LangGraph's ``add_messages`` reducer).
        preferences: the user's current preferences, dimension → value in [−1, 1]. Updates merge: the input
            ``{"preferences": {"cost": -1}}`` sets ``cost`` and keeps the other dimensions.
        applied: the strengths applied to the last reply (also in that message's ``response_metadata``).
        elicitation: the CALIBRATE mode's A/B elicitation (search) in progress or finished (absent or
            ``None`` in the other modes).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    preferences: NotRequired[Annotated[dict[str, float], merge_preferences]]
    applied: NotRequired[dict[str, float]]
    elicitation: NotRequired[dict[str, Any] | None]


@dataclass
class AgentContext:
    """Runtime context of one call: ``graph.invoke(..., context=AgentContext(user_id="ana"))``.

    Attributes:
        user_id: whose preferences to load and store (namespace ``("users", user_id, "preferences")``).
        strengths: explicit strengths (SELECT); in any mode they override what was inferred or elicited.
    """

    user_id: str = "anonymous"
    strengths: dict[str, float] | None = field(default=None)


def preference_namespace(user_id: str) -> tuple[str, str, str]:
    """The store namespace of a user's preferences."""
    return ("users", user_id, "preferences")
