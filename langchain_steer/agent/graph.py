"""Build the preference agent: a LangGraph graph that steers every reply by what the user prefers.

``graph`` at the bottom of this module is the default agent (LEARN mode, the demo model), compiled without a
checkpointer so that ``langgraph dev`` / LangGraph Platform can add their own; ``langgraph.json`` at the
repository root names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.graph import END, START, StateGraph

from langchain_steer.agent.elicitation import make_elicitation_nodes, route_elicitation
from langchain_steer.agent.inference import Inferencer, default_inferencer
from langchain_steer.agent.nodes import (
    make_learn_node,
    make_load_node,
    make_respond_node,
    make_select_node,
)
from langchain_steer.agent.remote import RemoteSteering, is_openai_chat_model
from langchain_steer.agent.state import AgentContext, Mode, PreferenceState
from langchain_steer.dimensions import DIMENSIONS

__all__ = ["build_preference_agent", "graph"]


def _chat_model(model: Any) -> Any:
    from langchain_steer.chat_model import SteeredChatModel

    # A mild repetition penalty: small models loop over multi-turn chats without one.
    if model is None:
        return SteeredChatModel(model="demo", max_tokens=160, repetition_penalty=1.15)
    if isinstance(model, str):
        return SteeredChatModel(model=model, max_tokens=160, repetition_penalty=1.15)
    if is_openai_chat_model(model):  # a model served by `langchain-steer serve`, steered over HTTP
        return RemoteSteering(model)
    if not hasattr(model, "invoke"):
        raise TypeError(
            f"model must be a model name, a SteeredChatModel or a ChatOpenAI pointed at "
            f"`langchain-steer serve`, not {type(model).__name__}."
        )
    return model


def build_preference_agent(
    model: Any = None,
    *,
    mode: Mode = "learn",
    inferencer: Inferencer | None = None,
    checkpointer: Any = None,
    store: Any = None,
    dimensions: Sequence[str] | None = None,
    calibrate_rounds: int = 3,
    system_prompt: str | None = None,
) -> Any:
    """Build and compile the preference agent.

    Args:
        model: the chat model that answers: a :class:`~langchain_steer.SteeredChatModel`, a model name
            for one (default: ``"demo"``; a name gets 160 tokens per reply and ``repetition_penalty=1.15``),
            or a ``ChatOpenAI(base_url=...)`` pointed at ``langchain-steer serve``, steered through the
            request body (:class:`~langchain_steer.agent.remote.RemoteSteering`).
        mode: ``"learn"`` (infer preferences from every user turn), ``"select"`` (strengths from the runtime
            context or the state only) or ``"calibrate"`` (an A/B elicitation: questions through
            ``interrupt()``).
        inferencer: how LEARN reads turns (default: the offline embedding classifier).
        checkpointer: any LangGraph checkpointer, for threads that survive restarts (e.g. ``SqliteSaver``).
        store: any LangGraph store, for per-user preferences across threads (e.g. ``SqliteStore``).
        dimensions: the dimensions to steer; each needs a vector in the chat model (default: every
            dimension it has a vector for: cost, ambiance, age, time and culture with the built-in
            vectors). In CALIBRATE mode, these are elicited one after the other.
        calibrate_rounds: A/B elicitation questions per dimension in CALIBRATE mode (2 to 4).
        system_prompt: an optional system message put before the conversation when answering.

    Returns:
        A compiled graph. State: ``messages``, ``preferences`` (and ``applied``, ``elicitation``). Runtime
        context: :class:`~langchain_steer.agent.AgentContext` (``user_id``, optional ``strengths``).

    Raises:
        ValueError: an unknown mode, repeated dimension names, or a dimension the chat model has no
            vector for (the message lists the ones it has).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver  # doctest: +SKIP
        >>> agent = build_preference_agent(checkpointer=InMemorySaver())  # doctest: +SKIP
        >>> agent.invoke(  # doctest: +SKIP
        ...     {"messages": [("user", "Cheap eats for me and my toddler?")]},
        ...     {"configurable": {"thread_id": "t1"}},
        ...     context=AgentContext(user_id="ana"),
        ... )["preferences"]
    """
    if mode not in ("learn", "select", "calibrate"):
        raise ValueError(f"mode must be 'learn', 'select' or 'calibrate', not {mode!r}.")
    llm = _chat_model(model)
    # Checked now, not at the first turn: a dimension without a vector would steer nothing, silently.
    steerable = getattr(llm, "steering_dimensions", None)
    known = list(steerable()) if callable(steerable) else list(DIMENSIONS)
    if dimensions is None:  # every dimension the model can steer, the built-in ones in their order
        names = [d for d in DIMENSIONS if d in known] + [d for d in known if d not in DIMENSIONS]
    else:
        names = list(dimensions)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"dimensions must be distinct names, not {dimensions!r}.")
    missing = [name for name in names if name not in known]
    if missing:
        raise ValueError(
            f"The chat model has no vector for {', '.join(map(repr, missing))}; it can steer: "
            f"{', '.join(known) or 'nothing (pass vectors=...)'}."
        )
    builder = StateGraph(PreferenceState, context_schema=AgentContext)
    builder.add_node("load", make_load_node(names))
    builder.add_node("respond", make_respond_node(llm, names, system_prompt))
    builder.add_edge(START, "load")
    if mode == "learn":
        builder.add_node("learn", make_learn_node(inferencer or default_inferencer(), names))
        builder.add_edge("load", "learn")
        builder.add_edge("learn", "respond")
    elif mode == "select":
        builder.add_node("select", make_select_node(names))
        builder.add_edge("load", "select")
        builder.add_edge("select", "respond")
    else:
        prepare, ask = make_elicitation_nodes(llm, names, calibrate_rounds, all_dimensions=names)
        builder.add_node("elicit_prepare", prepare)
        builder.add_node("elicit_ask", ask)
        builder.add_conditional_edges("load", route_elicitation)
        builder.add_edge("elicit_prepare", "elicit_ask")
        builder.add_conditional_edges("elicit_ask", route_elicitation)
    builder.add_edge("respond", END)
    return builder.compile(checkpointer=checkpointer, store=store, name=f"preference-agent-{mode}")


graph = build_preference_agent()
"""The default agent (LEARN, demo model), for ``langgraph.json``; it loads nothing until the first turn."""
