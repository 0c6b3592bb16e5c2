"""CALIBRATE: find a user's strength on a dimension with a few A/B questions, through interrupt and resume.

(CALIBRATE is the mode's name; the A/B search behind it is the agent's *elicitation*, kept in the state under
``"elicitation"``. It is not the range calibration of a steering vector.)

Run: python examples/agent_calibrate.py          (answers the questions itself: "A", then "B")
     python examples/agent_calibrate.py --ask    (asks you)

The graph stops at every question (LangGraph ``interrupt()``); ``Command(resume="A")`` answers it. With the
SQLite checkpointer the pending question survives a restart: run it again with the same database and thread,
and resume where you left off.
"""

import argparse

from langgraph.types import Command

from langchain_steer.agent import build_preference_agent
from langchain_steer.agent.persistence import SqlitePersistence


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ask", action="store_true", help="answer the questions yourself")
    parser.add_argument("--db", default="calibrate_example.db")
    args = parser.parse_args()
    scripted = iter(["A", "B"])
    with SqlitePersistence(args.db) as db:
        agent = build_preference_agent(
            mode="calibrate",
            dimensions=["cost"],
            calibrate_rounds=2,
            checkpointer=db.checkpointer,
            store=db.store,
        )
        config = {"configurable": {"thread_id": "elicitation-demo"}}
        result = agent.invoke(
            {"messages": [("user", "Where should I take my friend for dinner?")]}, config
        )
        while result.get("__interrupt__"):
            question = result["__interrupt__"][0].value
            print(f"\n[{question['dimension']}, round {question['round']}/{question['rounds']}]")
            for label in ("A", "B"):
                print(
                    f"{label} (strength {question['strengths'][label]:+.2f}): {question[label][:160]}"
                )
            choice = input(question["question"] + " ") if args.ask else next(scripted)
            print(f"-> {choice}")
            result = agent.invoke(Command(resume=choice), config)
        print(f"\nelicited: {result['elicitation']['results']}")
        print(f"assistant: {result['messages'][-1].content[:200]}")


if __name__ == "__main__":
    main()
