"""Streaming: time to first token, steered against unsteered, through ``SteeredChatModel.stream``.

Usage: python benchmarks/streaming.py [--model demo] [--repeats 10] [--json PATH]

Each repetition streams the same prompt twice, once with no steering and once with all five dimensions
set (alternating which goes first), and records the time from the call to the first chunk with text. Time
to first token is dominated by the prompt's prefill plus the batcher's window, so steering should add
nothing measurable. Also reported: the same for ``astream``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import spread, summary, table, write_json
from overhead import prompts

from langchain_steer import SteeredChatModel

FIVE = {"cost": 1.0, "ambiance": -1.0, "age": 1.0, "time": -1.0, "culture": 1.0}


def first_token(llm: SteeredChatModel, text: str, steering: dict[str, float]) -> float:
    start = time.perf_counter()
    stream = llm.stream(text, steering=steering)
    try:
        for chunk in stream:
            if chunk.content:
                return time.perf_counter() - start
    finally:
        stream.close()  # the rest of the reply is not needed: the row leaves the batch
    raise RuntimeError("The reply had no text.")


async def afirst_token(llm: SteeredChatModel, text: str, steering: dict[str, float]) -> float:
    start = time.perf_counter()
    stream = llm.astream(text, steering=steering)
    try:
        async for chunk in stream:
            if chunk.content:
                return time.perf_counter() - start
    finally:
        await stream.aclose()
    raise RuntimeError("The reply had no text.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="output file (default: benchmarks/results/streaming.json)")
    args = parser.parse_args()
    llm = SteeredChatModel(model=args.model, max_tokens=64)
    batcher = llm.batcher()
    text = prompts(1)[0]

    def idle() -> None:
        # A closed stream's row leaves at the next step (an async generator is finalised a moment later):
        # start each measurement on an idle model.
        while batcher.pending:
            time.sleep(0.002)

    for _ in range(2):  # warm-up
        first_token(llm, text, {})
        first_token(llm, text, FIVE)
    results: dict[str, Any] = {}
    for api, measure in (
        ("stream", lambda s: first_token(llm, text, s)),
        ("astream", lambda s: asyncio.run(afirst_token(llm, text, s))),
    ):
        times: dict[str, list[float]] = {"unsteered": [], "steered": []}
        for round_ in range(args.repeats):
            order = [("unsteered", {}), ("steered", FIVE)]
            for name, steering in order if round_ % 2 == 0 else order[::-1]:
                idle()
                times[name].append(measure(steering))
        ratios = [u / s for u, s in zip(times["unsteered"], times["steered"], strict=False)]
        results[api] = {
            "unsteered_ttft_s": summary(times["unsteered"]),
            "steered_ttft_s": summary(times["steered"]),
            "ratio_unsteered_over_steered": summary(ratios),
        }
    print(
        table(
            ["API", "unsteered TTFT s", "steered TTFT s (5 dimensions)", "ratio unsteered/steered"],
            [
                [
                    api,
                    spread(r["unsteered_ttft_s"]),
                    spread(r["steered_ttft_s"]),
                    spread(r["ratio_unsteered_over_steered"]),
                ]
                for api, r in results.items()
            ],
        )
    )
    path = write_json(
        "streaming",
        {"model": args.model, "repeats": args.repeats, "prompt": text, "results": results},
        args.json,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
