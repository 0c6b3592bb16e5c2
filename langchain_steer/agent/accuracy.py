"""Measure an inferencer on labelled conversations, with the two bars the package holds itself to.

A labelled conversation is ``{"id", "turns": [{"role", "content"}, ...], "expected": [...]}`` where
``expected`` gives, after each user turn, the user's preference so far per dimension: −1, 0 (not expressed)
or +1. After every user turn the inferred preferences (the update rule applied to every user turn so far,
as :func:`~langchain_steer.agent.inference.infer_preferences` does) are compared with the expected ones:

* **expressed** (expected ±1): right when the inferred value has the same sign and ``|value| ≥ 0.2``;
* **not expressed** (expected 0): right when ``|value| < 0.2``.

The goal is at least 90 % on each.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_steer.agent.inference import (
    EXPRESSED,
    Inferencer,
    default_inferencer,
    update_preferences,
)
from langchain_steer.dimensions import DIMENSIONS

__all__ = ["evaluate_inferencer", "load_conversations"]


def load_conversations(path: str | Path) -> list[dict[str, Any]]:
    """Read labelled conversations (a JSON list) and check their shape."""
    conversations = json.loads(Path(path).read_text(encoding="utf-8"))
    for conversation in conversations:
        users = sum(turn["role"] == "user" for turn in conversation["turns"])
        if users != len(conversation["expected"]):
            raise ValueError(
                f"Conversation {conversation.get('id')!r} has {users} user turns but "
                f"{len(conversation['expected'])} expected states."
            )
    return conversations


def _messages(turns: Sequence[dict[str, str]]) -> list[BaseMessage]:
    return [
        HumanMessage(t["content"]) if t["role"] == "user" else AIMessage(t["content"])
        for t in turns
    ]


def evaluate_inferencer(
    conversations: Sequence[dict[str, Any]],
    inferencer: Inferencer | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
) -> dict[str, Any]:
    """Score ``inferencer`` (default: the offline one) on labelled conversations.

    Returns:
        ``expressed`` and ``not_expressed`` accuracies with their counts, a breakdown per dimension and per
        conversation tag, and the list of misses (conversation id, user turn, dimension, expected, inferred).
    """
    inferencer = inferencer or default_inferencer()
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # key -> [right, total]
    misses = []
    for conversation in conversations:
        readings = inferencer.read(_messages(conversation["turns"]))
        state = dict.fromkeys(dimensions, 0.0)
        for turn, (reading, expected) in enumerate(
            zip(readings, conversation["expected"], strict=True)
        ):
            state = update_preferences(state, reading, dimensions)
            for name in dimensions:
                gold, value = expected.get(name, 0), state[name]
                if gold:
                    kind = "expressed"
                    right = value * gold > 0 and abs(value) >= EXPRESSED
                else:
                    kind = "not_expressed"
                    right = abs(value) < EXPRESSED
                tags = conversation.get("tags", [])
                keys = [kind, f"{kind}/{name}", *(f"{kind}/tag:{tag}" for tag in tags)]
                for key in keys:
                    tally[key][0] += int(right)
                    tally[key][1] += 1
                if not right:
                    text = [t for t in conversation["turns"] if t["role"] == "user"][turn][
                        "content"
                    ]
                    misses.append(
                        {
                            "conversation": conversation.get("id"),
                            "user_turn": turn,
                            "text": text,
                            "dimension": name,
                            "expected": gold,
                            "inferred": value,
                        }
                    )
    scores = {
        key: {"accuracy": right / total, "n": total}
        for key, (right, total) in sorted(tally.items())
    }
    return {
        "expressed": scores.get("expressed", {"accuracy": float("nan"), "n": 0}),
        "not_expressed": scores.get("not_expressed", {"accuracy": float("nan"), "n": 0}),
        "breakdown": scores,
        "misses": misses,
    }
