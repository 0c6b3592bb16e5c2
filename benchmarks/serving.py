"""Serving: 8 concurrent users with different steering, micro-batched against one-by-one.

Usage: python benchmarks/serving.py [--model demo] [--users 8] [--tokens 64] [--repeats 5] [--json PATH]

All users send their request at the same moment through ``SteeredChatModel.ainvoke``, each with its own
steering. The two servers differ only in ``max_batch_size``:

* **micro-batched**: ``max_batch_size=users``, so the requests share one batch;
* **one-by-one**: ``max_batch_size=1``, so they are decoded one after another (the queue serves them in
  arrival order).

Greedy decoding gives both servers the same replies, so they produce the same number of tokens. Reported:
throughput (generated tokens per second of wall time) and each request's latency from the common start to
its reply (p50 and p95). Goal: ≥4× throughput on the demo model on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _common import spread, summary, table, write_json
from overhead import ROW_STEERING, prompts

from langchain_steer import SteeredChatModel


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(start: float, done: list[tuple[str, int, float]]) -> dict[str, Any]:
    """Throughput, p50/p95 latency and replies of concurrent requests started at ``start``.

    ``done`` holds one ``(reply, tokens, seconds from start to the reply's end)`` per request.
    """
    wall = time.perf_counter() - start
    tokens = sum(n for _, n, _ in done)
    latencies = [t for _, _, t in done]
    return {
        "wall_s": wall,
        "tokens": tokens,
        "throughput": tokens / wall,
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "replies": [text for text, _, _ in done],
    }


async def serve(
    llm: SteeredChatModel, texts: list[str], steering: list[dict[str, float]]
) -> dict[str, Any]:
    start = time.perf_counter()
    latencies: list[float] = []

    async def user(text: str, strengths: dict[str, float]) -> Any:
        reply = await llm.ainvoke(text, steering=strengths)
        latencies.append(time.perf_counter() - start)
        return reply

    replies = await asyncio.gather(*(user(t, s) for t, s in zip(texts, steering, strict=False)))
    wall = time.perf_counter() - start
    tokens = sum(r.usage_metadata["output_tokens"] for r in replies)
    return {
        "wall_s": wall,
        "tokens": tokens,
        "throughput": tokens / wall,
        "p50_s": percentile(latencies, 0.5),
        "p95_s": percentile(latencies, 0.95),
        "replies": [r.content for r in replies],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    texts = prompts(args.users)
    steering = [ROW_STEERING[i % len(ROW_STEERING)] for i in range(args.users)]
    servers = {
        "micro-batched": SteeredChatModel(
            model=args.model, max_tokens=args.tokens, max_batch_size=args.users
        ),
        "one-by-one": SteeredChatModel(model=args.model, max_tokens=args.tokens, max_batch_size=1),
    }
    for llm in servers.values():  # warm-up: load, first batch
        await serve(llm, texts[:2], steering[:2])
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    names = list(servers)
    for round_ in range(args.repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            rounds[name].append(await serve(servers[name], texts, steering))
            print(
                f"round {round_ + 1} {name}: {rounds[name][-1]['throughput']:.1f} tok/s, "
                f"wall {rounds[name][-1]['wall_s']:.1f} s",
                flush=True,
            )
    same = all(
        a["replies"] == b["replies"]
        for a, b in zip(rounds["micro-batched"], rounds["one-by-one"], strict=False)
    )
    ratios = [
        b["throughput"] / s["throughput"]
        for b, s in zip(rounds["micro-batched"], rounds["one-by-one"], strict=False)
    ]
    result: dict[str, Any] = {
        "model": args.model,
        "users": args.users,
        "max_tokens": args.tokens,
        "repeats": args.repeats,
        "same_replies": same,
        "throughput_ratio": summary(ratios),
        "goal": 4.0,
    }
    for name, values in rounds.items():
        result[name] = {
            key: summary([v[key] for v in values])
            for key in ("throughput", "wall_s", "p50_s", "p95_s", "tokens")
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="output file (default: benchmarks/results/serving.json)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    rows = []
    for name in ("micro-batched", "one-by-one"):
        r = result[name]
        rows.append(
            [
                name,
                spread(r["throughput"], 1),
                f"{r['p50_s']['median']:.1f}",
                f"{r['p95_s']['median']:.1f}",
                f"{statistics.median([r['tokens']['median']]):.0f}",
            ]
        )
    print()
    print(
        table(
            [
                "server",
                "throughput tok/s (median, min–max)",
                "p50 latency s",
                "p95 latency s",
                "tokens",
            ],
            rows,
        )
    )
    print(
        f"\nthroughput ratio {spread(result['throughput_ratio'], 2)} (goal ≥{result['goal']}); "
        f"identical replies: {result['same_replies']}"
    )
    print(f"wrote {write_json('serving', result, args.json)}")


if __name__ == "__main__":
    main()
