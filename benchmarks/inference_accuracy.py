"""Accuracy of the preference inferencer on the labelled development conversations.

Usage: python benchmarks/inference_accuracy.py [--data tests/data/agent_dev_conversations.json] [--json PATH]

Prints both bars (expressed / not expressed, goal 90 % each), the breakdown per dimension and per kind of
conversation, and the time per conversation; writes everything, misses included, to JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import table, write_json

from langchain_steer.agent.accuracy import evaluate_inferencer, load_conversations
from langchain_steer.agent.inference import default_inferencer, infer_preferences

DEFAULT_DATA = Path(__file__).parents[1] / "tests" / "data" / "agent_dev_conversations.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument(
        "--json", help="output file (default: benchmarks/results/inference_accuracy.json)"
    )
    args = parser.parse_args()
    conversations = load_conversations(args.data)
    infer_preferences(["warm-up"], inferencer=default_inferencer())  # load the encoder once
    start = time.perf_counter()
    result = evaluate_inferencer(conversations)
    per_conversation = (time.perf_counter() - start) / len(conversations)
    rows = [
        [key, f"{value['accuracy']:.1%}", value["n"]]
        for key, value in result["breakdown"].items()
        if key in ("expressed", "not_expressed") or "/" in key
    ]
    print(table(["bar (goal ≥90 %)", "accuracy", "cases"], rows))
    print(f"\n{len(conversations)} conversations, {per_conversation * 1000:.0f} ms each")
    result["seconds_per_conversation"] = per_conversation
    print(f"wrote {write_json('inference_accuracy', result, args.json)}")


if __name__ == "__main__":
    main()
