"""LEARN: the agent infers the user's preferences from what they say, and steers every reply by them.

Run: python examples/agent_learn.py

Three turns from one user who changes their mind about money, then a new conversation of the same user,
which starts from the preferences remembered in the SQLite store.
"""

import tempfile
from pathlib import Path

from langchain_steer.agent import AgentContext, build_preference_agent
from langchain_steer.agent.persistence import SqlitePersistence

TURNS = [
    "Hi! Can you suggest a place to eat on Saturday?",
    "Money is really tight this month, so nothing pricey please.",
    "Oh wait, my boss is paying after all. Let's go all out!",
]


def show(result: dict) -> None:
    print(f"assistant: {result['messages'][-1].content[:200]}")
    shown = "  ".join(f"{k} {v:+.2f}" for k, v in result["preferences"].items())
    print(f"  preferences: {shown}\n  applied: {result['applied']}\n")


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as folder,
        SqlitePersistence(Path(folder) / "agent.db") as db,
    ):
        agent = build_preference_agent(checkpointer=db.checkpointer, store=db.store)
        context = AgentContext(user_id="sam")
        for turn in TURNS:
            print(f"user: {turn}")
            show(
                agent.invoke(
                    {"messages": [("user", turn)]},
                    {"configurable": {"thread_id": "1"}},
                    context=context,
                )
            )

        print("user (new conversation): Any ideas for next weekend?")
        fresh = {"configurable": {"thread_id": "2"}}
        show(
            agent.invoke(
                {"messages": [("user", "Any ideas for next weekend?")]}, fresh, context=context
            )
        )


if __name__ == "__main__":
    main()
