"""The ``agent`` command: chat with the preference agent in the terminal (a pipe works too)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from langchain_steer.cli.common import model_options, parse_steer, system, system_option

AGENT_HELP = (
    """commands: /set NAME=VALUE ... (set strengths), /prefs (show them), /quit (or Ctrl-D)"""
)


def _show_preferences(preferences: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:+.2f}" for name, value in preferences.items())


def _ask_elicitation(payload: dict[str, Any], read: Any) -> str:
    print(f"\n[calibrate {payload['dimension']}, round {payload['round']}/{payload['rounds']}]")
    for label in ("A", "B"):
        print(f"  {label} ({payload['strengths'][label]:+.2f}): {payload[label]}")
    while True:
        answer = read(f"{payload['question']} ").strip()
        if answer.lower() in ("a", "b", "same"):
            return answer
        print("  please answer A, B or same")


def cmd_agent(args: argparse.Namespace) -> int:
    """Interactive chat with the preference agent (reads stdin; works with a pipe too)."""
    from langchain_core.messages import HumanMessage
    from langgraph.types import Command

    from langchain_steer.agent import AgentContext, build_preference_agent
    from langchain_steer.agent.persistence import SqlitePersistence, default_database
    from langchain_steer.chat_model import SteeredChatModel

    dimensions = args.dimensions.split(",") if args.dimensions else None
    db_path = Path(args.db) if args.db else default_database()
    thread = args.thread or f"{args.user}-{time.strftime('%Y%m%d-%H%M%S')}"
    interactive = sys.stdin.isatty()

    def read(prompt: str) -> str:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        print(f"{prompt}{line.rstrip()}")
        return line

    llm = SteeredChatModel(
        model=args.model,
        device=args.device,
        max_tokens=args.max_tokens,
        vectors=args.vectors,
        repetition_penalty=1.15,  # as the agent's default model: small models loop in long chats
    )
    with SqlitePersistence(db_path) as db:
        try:
            agent = build_preference_agent(
                llm,
                mode=args.mode,
                checkpointer=db.checkpointer,
                store=db.store,
                dimensions=dimensions,
                calibrate_rounds=args.rounds,
                system_prompt=system(args),
            )
        except (TypeError, ValueError) as error:
            raise SystemExit(f"error: {error}") from None
        config = {"configurable": {"thread_id": thread}}
        context = AgentContext(user_id=args.user)
        print(f"user {args.user!r}, mode {args.mode}, thread {thread!r}, database {db_path}")
        print(AGENT_HELP)
        while True:
            try:
                text = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return 0
            if text == "/prefs":
                values = agent.get_state(config).values.get("preferences") or {}
                print(f"  preferences: {_show_preferences(values) or 'none yet'}")
                continue
            if text.startswith("/set"):
                try:
                    update = parse_steer(text.split()[1:])
                    known = dimensions or llm.steering_dimensions()
                    unknown = sorted(set(update) - set(known))
                    if unknown:  # "set cots +1.00" would steer nothing, silently
                        raise ValueError(
                            f"unknown dimension {unknown[0]!r}; known: {', '.join(known)}"
                        )
                    # As if the last reply had just been written: nothing is left pending in the thread.
                    agent.update_state(config, {"preferences": update}, as_node="respond")
                except (SystemExit, ValueError) as error:
                    print(f"  {error}")
                    continue
                print(f"  set {_show_preferences(update)}")
                continue
            try:
                result = agent.invoke({"messages": [HumanMessage(text)]}, config, context=context)
                while result.get("__interrupt__"):
                    choice = _ask_elicitation(result["__interrupt__"][0].value, read)
                    result = agent.invoke(Command(resume=choice), config, context=context)
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            except ValueError as error:
                print(f"  error: {error}")
                continue
            print(f"assistant> {result['messages'][-1].content}")
            print(f"  [{_show_preferences(result.get('preferences', {}))}]")


def add_command(sub: Any) -> None:
    """Add ``agent`` to the subcommands ``sub``."""
    agent = sub.add_parser(
        "agent", help="chat with the preference agent; it shows the strengths after each turn"
    )
    model_options(agent)
    agent.add_argument("--user", default="me", help="whose preferences to use and remember")
    agent.add_argument("--mode", choices=["learn", "select", "calibrate"], default="learn")
    agent.add_argument(
        "--db", help="SQLite file for threads and preferences (default: the one `serve` uses too, "
        "$LANGCHAIN_STEER_DB or ~/.local/share/langchain-steer/preferences.db)"
    )
    agent.add_argument("--thread", help="resume this conversation (default: a new one)")
    agent.add_argument(
        "--dimensions", help="comma-separated subset (calibrate: the ones to elicit)"
    )
    agent.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="A/B elicitation questions per dimension (calibrate mode, 2-4)",
    )
    agent.add_argument("--vectors", help="a folder of vector files (default: built-in)")
    system_option(agent)
    agent.add_argument("--max-tokens", type=int, default=160)
    agent.set_defaults(func=cmd_agent)
