"""A/B elicitation: find the user's strength on a dimension by asking which of two answers fits better.

``"calibrate"`` (CALIBRATE) is the name of the agent's mode; *elicitation* is the mechanism behind it, and
the name used inside the code (``make_elicitation_nodes``, the nodes ``elicit_prepare`` / ``elicit_ask``,
the state key ``"elicitation"``). It is a different thing from a steering vector's *range calibration*
(setting ``functional_range``, :mod:`langchain_steer.eval` range calibration), which keeps that name.

For each dimension to elicit, the search keeps an interval (at first ``[−1, 1]``). Each round:

1. ``elicit_prepare`` answers the user's message twice, at the first and third quarter points of the
   interval (at first −0.5 and +0.5), and stores both answers in the state;
2. ``elicit_ask`` shows them through LangGraph's ``interrupt()`` and waits. Resume the graph with
   ``Command(resume="A")``, ``"B"`` or ``"same"``; ``"A"`` keeps the lower half of the interval, ``"B"`` the
   upper half, and ``"same"`` the middle half.

After ``rounds`` rounds (2 to 4) the strength is the middle of the interval, and it stays fixed for the rest
of the conversation. Preparing and asking are separate nodes, so resuming (even in a new process, with a
persistent checkpointer) re-runs only the cheap ``ask`` step, not the generation.

The interrupt's payload (its ``"type"`` is the mode name)::

    {"type": "calibrate", "dimension": "cost", "round": 1, "rounds": 3,
     "question": "Which answer fits you better? Reply A, B or same.",
     "A": "...", "B": "...", "strengths": {"A": -0.5, "B": 0.5}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from langchain_steer.agent.nodes import Node, clip_preferences, save_preferences
from langchain_steer.agent.state import AgentContext, PreferenceState

__all__ = ["CHOICES", "make_elicitation_nodes", "route_elicitation"]

CHOICES = {"a": "A", "b": "B", "same": "same", "either": "same", "both": "same", "neither": "same"}
QUESTION = "Which answer fits you better? Reply A, B or same."


def _new_search(dimensions: Sequence[str], rounds: int) -> dict[str, Any]:
    return {
        "queue": list(dimensions),
        "interval": [-1.0, 1.0],
        "round": 0,
        "rounds": rounds,
        "options": None,
        "results": {},
        "done": not dimensions,
    }


def _choice(answer: Any) -> str:
    raw = answer.get("choice") if isinstance(answer, Mapping) else answer
    choice = CHOICES.get(str(raw).strip().lower())
    if choice is None:
        raise ValueError(f"Resume an A/B elicitation with 'A', 'B' or 'same', not {raw!r}.")
    return choice


def route_elicitation(state: PreferenceState) -> Literal["elicit_prepare", "respond"]:
    """After ``load`` and ``elicit_ask``: keep eliciting until every dimension is settled, then answer."""
    search = state.get("elicitation")
    return "respond" if search and search.get("done") else "elicit_prepare"


def make_elicitation_nodes(
    llm: Any, dimensions: Sequence[str], rounds: int, *, all_dimensions: Sequence[str] | None = None
) -> tuple[Node, Node]:
    """Build the ``elicit_prepare`` and ``elicit_ask`` nodes (the CALIBRATE mode's elicitation).

    Args:
        llm: the steered chat model that writes the two answers.
        dimensions: the dimensions to elicit, one after the other.
        rounds: questions per dimension (2 to 4).
        all_dimensions: every dimension the agent steers (default: ``dimensions``); the others keep their
            current values while one is elicited.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 2 <= rounds <= 4:
        raise ValueError(f"An A/B elicitation takes 2 to 4 rounds, not {rounds!r}.")
    to_elicit = list(dimensions)
    every = list(all_dimensions or dimensions)

    def prepare(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        search = dict(state.get("elicitation") or _new_search(to_elicit, rounds))
        if search["done"]:
            return {"elicitation": search}
        name = search["queue"][0]
        low, high = search["interval"]
        quarter = (high - low) / 4
        strengths = {"A": round(low + quarter, 4), "B": round(high - quarter, 4)}
        base = clip_preferences(state.get("preferences") or {}, every)
        messages: list[BaseMessage] = list(state["messages"])
        options = {}
        for label, strength in strengths.items():
            steering = {k: v for k, v in {**base, name: strength}.items() if v}
            options[label] = str(llm.invoke(messages, steering=steering).content)
        search["options"] = {"dimension": name, "strengths": strengths, **options}
        return {"elicitation": search}

    def ask(state: PreferenceState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        search = dict(state["elicitation"] or {})
        options = search["options"]
        answer = interrupt(
            {
                "type": "calibrate",
                "dimension": options["dimension"],
                "round": search["round"] + 1,
                "rounds": search["rounds"],
                "question": QUESTION,
                "A": options["A"],
                "B": options["B"],
                "strengths": options["strengths"],
            }
        )
        choice = _choice(answer)
        low, high = search["interval"]
        middle = (low + high) / 2
        quarter = (high - low) / 4
        search["interval"] = {
            "A": [low, middle],
            "B": [middle, high],
            "same": [low + quarter, high - quarter],
        }[choice]
        search["round"] += 1
        search["options"] = None
        preferences = dict(state.get("preferences") or {})
        if search["round"] >= search["rounds"]:
            name = search["queue"].pop(0)
            value = round(sum(search["interval"]) / 2, 4)
            search["results"] = {**search["results"], name: value}
            preferences[name] = value
            search.update(interval=[-1.0, 1.0], round=0, done=not search["queue"])
            save_preferences(runtime, clip_preferences(preferences, every))
        return {"elicitation": search, "preferences": preferences}

    return prepare, ask
