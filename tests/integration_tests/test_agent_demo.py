"""The preference agent with real components: the demo model, the shipped inferencer, SQLite on disk."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from langgraph.types import Command

from langchain_steer import SteeredChatModel
from langchain_steer.agent import (
    AgentContext,
    LLMInferencer,
    build_preference_agent,
    infer_preferences,
)
from langchain_steer.agent.accuracy import evaluate_inferencer, load_conversations
from langchain_steer.agent.persistence import SqlitePersistence
from langchain_steer.dimensions import DIMENSIONS

DEV_SET = Path(__file__).parents[1] / "data" / "agent_dev_conversations.json"


@pytest.fixture(scope="module")
def llm():
    return SteeredChatModel(model="demo", max_tokens=24)


def _run(code: str) -> dict:
    """Run ``code`` in a new Python process; it prints one JSON line last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_three_turns_move_cost_from_zero_to_budget_to_luxury(llm, tmp_path):
    turns = [
        "Hi! Can you suggest a place to eat on Saturday?",
        "Money is really tight this month, so nothing pricey please.",
        "Oh wait, my boss is paying after all. Let's go all out!",
    ]
    with SqlitePersistence(tmp_path / "agent.db") as db:
        agent = build_preference_agent(llm, checkpointer=db.checkpointer, store=db.store)
        config = {"configurable": {"thread_id": "three-turns"}}
        costs, replies = [], []
        for turn in turns:
            state = agent.invoke(
                {"messages": [("user", turn)]}, config, context=AgentContext(user_id="sam")
            )
            costs.append(state["preferences"]["cost"])
            replies.append(state["messages"][-1])
    assert costs[0] == 0.0 and costs[1] <= -0.5 and costs[2] >= 0.5, costs
    assert replies[1].response_metadata["steering"]["cost"] == costs[1]
    assert replies[2].response_metadata["steering"]["cost"] == costs[2]
    assert all(reply.content for reply in replies)


def test_preferences_survive_a_new_process(llm, tmp_path):
    db_path = tmp_path / "agent.db"
    with SqlitePersistence(db_path) as db:
        agent = build_preference_agent(llm, checkpointer=db.checkpointer, store=db.store)
        first = agent.invoke(
            {
                "messages": [
                    ("user", "We're on a student budget and bringing our toddler, any ideas?")
                ]
            },
            {"configurable": {"thread_id": "before-restart"}},
            context=AgentContext(user_id="lee"),
        )
    assert first["preferences"]["cost"] <= -0.5 and first["preferences"]["age"] <= -0.5
    after = _run(
        f"""
        import json
        from langchain_steer import SteeredChatModel
        from langchain_steer.agent import AgentContext, build_preference_agent
        from langchain_steer.agent.persistence import SqlitePersistence
        with SqlitePersistence({str(db_path)!r}) as db:
            agent = build_preference_agent(
                SteeredChatModel(model="demo", max_tokens=8), checkpointer=db.checkpointer, store=db.store
            )
            old = agent.get_state({{"configurable": {{"thread_id": "before-restart"}}}}).values
            new = agent.invoke(
                {{"messages": [("user", "hello again")]}},
                {{"configurable": {{"thread_id": "after-restart"}}}},
                context=AgentContext(user_id="lee"),
            )
        print(json.dumps({{"old": old["preferences"], "new": new["preferences"]}}))
        """
    )
    assert after["old"] == first["preferences"]
    assert after["new"] == first["preferences"]  # a new thread starts from the stored preferences


def test_calibrate_mode_elicitation_completes_through_interrupt_and_resume_across_processes(
    tmp_path,
):
    db_path = tmp_path / "calibrate.db"
    build = f"""
        import json
        from langgraph.types import Command
        from langchain_steer import SteeredChatModel
        from langchain_steer.agent import build_preference_agent
        from langchain_steer.agent.persistence import SqlitePersistence
        db = SqlitePersistence({str(db_path)!r})
        agent = build_preference_agent(
            SteeredChatModel(model="demo", max_tokens=16), mode="calibrate", dimensions=["cost"],
            calibrate_rounds=2, checkpointer=db.checkpointer, store=db.store,
        )
        config = {{"configurable": {{"thread_id": "elicitation"}}}}
    """
    first = _run(
        build
        + """
        state = agent.invoke({"messages": [("user", "Where should we go for dinner?")]}, config)
        print(json.dumps(state["__interrupt__"][0].value))
        """
    )
    assert first["dimension"] == "cost" and first["round"] == 1
    assert first["strengths"] == {"A": -0.5, "B": 0.5} and first["A"] and first["B"]
    done = _run(
        build
        + """
        state = agent.invoke(Command(resume="B"), config)
        second = state["__interrupt__"][0].value
        state = agent.invoke(Command(resume="A"), config)
        print(json.dumps({
            "second": second, "interrupted": "__interrupt__" in state,
            "cost": state["preferences"]["cost"], "reply": state["messages"][-1].content,
        }))
        """
    )
    assert done["second"]["round"] == 2 and done["second"]["strengths"] == {"A": 0.25, "B": 0.75}
    assert not done["interrupted"] and done["reply"]
    assert done["cost"] == 0.25  # B kept [0, 1], then A kept [0, 0.5]: the middle is 0.25


def test_llm_inferencer_on_the_steered_model_returns_valid_values(llm):
    inferencer = LLMInferencer(SteeredChatModel(model="demo", max_tokens=120))
    result = infer_preferences(
        ["Cheap sushi for me and my two kids, please.", "Actually, price doesn't matter."],
        inferencer=inferencer,
    )
    assert set(result) == set(DIMENSIONS)
    assert all(isinstance(v, float) and -1.0 <= v <= 1.0 for v in result.values())


def test_default_inferencer_on_the_development_set():
    """The two bars of docs/agent.md: 90 % on expressed and on unexpressed dimensions."""
    result = evaluate_inferencer(load_conversations(DEV_SET))
    assert result["expressed"]["n"] > 500 and result["not_expressed"]["n"] > 1000
    assert result["expressed"]["accuracy"] >= 0.90, result["expressed"]
    assert result["not_expressed"]["accuracy"] >= 0.90, result["not_expressed"]


def test_resume_answers_must_be_a_b_or_same(llm):
    from langgraph.checkpoint.memory import InMemorySaver

    agent = build_preference_agent(
        llm, mode="calibrate", dimensions=["age"], calibrate_rounds=2, checkpointer=InMemorySaver()
    )
    config = {"configurable": {"thread_id": "bad-answer"}}
    agent.invoke({"messages": [("user", "A weekend plan?")]}, config)
    with pytest.raises(ValueError, match="'A', 'B' or 'same'"):
        agent.invoke(Command(resume="C"), config)
