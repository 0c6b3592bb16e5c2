"""CALIBRATE over HTTP: the preference agent's A/B rounds as a session a client steps through.

``POST /v1/users/{user}/calibration`` starts a session: the preference agent, in ``calibrate`` mode, answers
the conversation twice at two strengths of the first dimension and stops at its ``interrupt()``. The
response is that round::

    {"session": "4f1c...", "done": false, "dimension": "cost", "round": 1, "rounds": 2,
     "A": "...", "B": "...", "strengths": {"A": -0.5, "B": 0.5}, "preferences": {...}}

``POST /v1/users/{user}/calibration/{session}`` with ``{"choice": "A" | "B" | "same"}`` resumes the agent
with that answer and returns the next round, or, after the last one, ``{"done": true, "preferences":
{...}, "reply": "..."}``. The agent's binary search decides each strength (see
:mod:`langchain_steer.agent.elicitation`) and stores the results in the user's preferences, the same
store the chat endpoint reads, so the next chat turn is steered by them.

Sessions are LangGraph threads in the server's checkpointer (SQLite or PostgreSQL, like the
preferences), so a session survives a restart. A session's thread id includes its user: one user cannot
step through another's session.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, ConfigDict, Field

from langchain_steer.server.protocol import Message, RequestError

__all__ = ["CalibrationAnswer", "CalibrationStart", "Calibrations"]

_SESSION = re.compile(r"[0-9a-f]{32}")


class CalibrationStart(BaseModel):
    """``POST /v1/users/{user}/calibration``."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    dimensions: list[str] | None = None
    """The dimensions to calibrate, one after the other (default: every loaded one)."""
    rounds: int = Field(default=2, ge=2, le=4)
    """A/B questions per dimension."""
    max_tokens: int = Field(default=60, ge=8, le=512)
    """The length of each of the two answers in a round."""


class CalibrationAnswer(BaseModel):
    """``POST /v1/users/{user}/calibration/{session}``."""

    model_config = ConfigDict(extra="forbid")

    choice: str
    """``"A"``, ``"B"`` or ``"same"``."""


class Calibrations:
    """Runs CALIBRATE sessions for the server on its chat model, store and checkpointer."""

    def __init__(self, llm: Any, store: Any, checkpointer: Any, dimensions: Sequence[str]) -> None:
        self.llm = llm
        self.store = store
        self.checkpointer = checkpointer
        self.dimensions = list(dimensions)

    def _agent(self, dimensions: Sequence[str], rounds: int, max_tokens: int) -> Any:
        from langchain_steer.agent import build_preference_agent

        model = self.llm.model_copy(update={"max_tokens": max_tokens})  # shares the loaded model
        return build_preference_agent(
            model, mode="calibrate", checkpointer=self.checkpointer, store=self.store,
            dimensions=list(dimensions), calibrate_rounds=rounds,
        )  # fmt: skip

    @staticmethod
    def _config(user: str, session: str) -> Any:
        return {"configurable": {"thread_id": f"calibrate:{user}:{session}"}}

    @staticmethod
    def _namespace(user: str) -> tuple[str, ...]:
        return ("users", user, "calibration")

    def start(self, user: str, messages: list[BaseMessage], body: CalibrationStart) -> dict[str, Any]:
        """Start a session and return its first round (blocking: two replies are generated)."""
        dimensions = body.dimensions or self.dimensions
        unknown = [name for name in dimensions if name not in self.dimensions]
        if unknown:
            raise RequestError(
                f"Unknown steering dimension {unknown[0]!r}; known: {', '.join(self.dimensions)}.",
                param="dimensions",
            )
        if len(set(dimensions)) != len(dimensions) or not dimensions:
            raise RequestError("dimensions must be distinct, and at least one.", param="dimensions")
        from langchain_steer.agent import AgentContext

        session = uuid.uuid4().hex
        # A resume must rebuild the same graph: keep the session's settings beside the user's preferences.
        settings = {"dimensions": list(dimensions), "rounds": body.rounds, "max_tokens": body.max_tokens}
        self.store.put(self._namespace(user), session, settings)
        agent = self._agent(dimensions, body.rounds, body.max_tokens)
        result = agent.invoke(
            {"messages": messages}, self._config(user, session), context=AgentContext(user_id=user)
        )
        return self._round(session, result)

    def answer(self, user: str, session: str, choice: str) -> dict[str, Any]:
        """Resume ``session`` with the user's ``choice``; the next round, or the result."""
        from langgraph.types import Command

        from langchain_steer.agent import AgentContext
        from langchain_steer.agent.elicitation import CHOICES

        if not _SESSION.fullmatch(session):
            raise RequestError("Not a calibration session id.", param="session", status=404)
        if choice.strip().lower() not in CHOICES:
            raise RequestError("choice must be 'A', 'B' or 'same'.", param="choice")
        item = self.store.get(self._namespace(user), session)
        if item is None:
            raise RequestError("No such calibration session for this user.", param="session", status=404)
        settings = item.value
        if settings.get("done"):
            raise RequestError("This calibration session has finished.", param="session", status=409)
        agent = self._agent(settings["dimensions"], settings["rounds"], settings["max_tokens"])
        result = agent.invoke(
            Command(resume=choice), self._config(user, session), context=AgentContext(user_id=user)
        )
        answered = self._round(session, result)
        if answered["done"]:
            self.store.put(self._namespace(user), session, {**settings, "done": True})
        return answered

    @staticmethod
    def _round(session: str, result: dict[str, Any]) -> dict[str, Any]:
        interrupts = result.get("__interrupt__") or []
        preferences = dict(result.get("preferences") or {})
        if interrupts:
            payload = dict(interrupts[0].value)
            payload.pop("type", None)
            return {"session": session, "done": False, **payload, "preferences": preferences}
        messages = result.get("messages") or []
        reply = str(messages[-1].content) if messages else ""
        return {"session": session, "done": True, "preferences": preferences, "reply": reply}
