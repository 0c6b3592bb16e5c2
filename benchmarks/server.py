"""The OpenAI-compatible server: throughput and latency of streaming clients, against the chat model direct.

Usage: python benchmarks/server.py [--model demo] [--clients 1 8 32] [--tokens 48] [--repeats 5]
[--max-batch-size 32] [--json PATH]

Two ways to serve the same requests, measured side by side in one run, in alternating order:

* **server**: ``langchain-steer serve`` in a subprocess on a loopback port, called by ``--clients``
  concurrent streaming clients (the official ``openai`` SDK's ``AsyncOpenAI``, ``stream=True``, steering
  through ``extra_body``);
* **server-raw**: the same server, called by minimal streaming clients (``httpx``, one ``json.loads`` per
  event), which separates the server's own cost from the ``openai`` SDK's per-chunk parsing: on a small
  machine the clients share the CPU with the model;
* **direct**: the same model as a :class:`~langchain_steer.SteeredChatModel` in this process, called by
  the same number of concurrent ``astream`` calls with the same steering.

Both use the same ``max_batch_size``, so both share forward passes between the clients in the same way;
the difference is what the server adds: HTTP, JSON, server-sent events, validation, the preference store
lookup and the event-loop hand-offs. Only one of the two is running at any moment (the server process idles
while the direct model decodes, and the other way round), so they do not compete for the CPU.

Reported per client count: throughput (generated tokens per second of wall time), and each request's
latency from the common start to its last token (p50 and p95). Each server/direct throughput ratio is
taken per repetition and summarised. Goal: at most 5 % lower throughput through the server at 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from _common import spread, summary, table, write_json
from overhead import ROW_STEERING, prompts
from serving import measure

from langchain_steer import SteeredChatModel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``langchain-steer serve`` on a free loopback port, its log in ``folder``."""

    def __init__(self, model: str, max_batch_size: int, folder: Path) -> None:
        self.port = _free_port()
        self.log_path = folder / "server.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "langchain_steer.cli", "serve", "--port", str(self.port),
                "--model", model, "--db", str(folder / "preferences.db"),
                "--max-batch-size", str(max_batch_size),
            ],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the server was not ready in {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


async def through_server(
    client: Any, model: str, texts: list[str], steering: list[dict[str, float]], tokens: int
) -> dict[str, Any]:
    start = time.perf_counter()

    async def one(text: str, strengths: dict[str, float]) -> tuple[str, int, float]:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=tokens,
            stream=True, stream_options={"include_usage": True}, extra_body={"steering": strengths},
        )  # fmt: skip
        parts: list[str] = []
        used = 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                used = chunk.usage.completion_tokens
        return "".join(parts), used, time.perf_counter() - start

    done = await asyncio.gather(*(one(t, s) for t, s in zip(texts, steering, strict=True)))
    return measure(start, done)


async def through_server_raw(
    http: httpx.AsyncClient,
    model: str,
    texts: list[str],
    steering: list[dict[str, float]],
    tokens: int,
) -> dict[str, Any]:
    start = time.perf_counter()

    async def one(text: str, strengths: dict[str, float]) -> tuple[str, int, float]:
        body = {
            "model": model, "messages": [{"role": "user", "content": text}], "max_tokens": tokens,
            "stream": True, "stream_options": {"include_usage": True}, "steering": strengths,
        }  # fmt: skip
        parts: list[str] = []
        used = 0
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    parts.append(chunk["choices"][0]["delta"]["content"])
                if chunk.get("usage"):
                    used = chunk["usage"]["completion_tokens"]
        return "".join(parts), used, time.perf_counter() - start

    done = await asyncio.gather(*(one(t, s) for t, s in zip(texts, steering, strict=True)))
    return measure(start, done)


async def direct(
    llm: SteeredChatModel, texts: list[str], steering: list[dict[str, float]]
) -> dict[str, Any]:
    start = time.perf_counter()

    async def one(text: str, strengths: dict[str, float]) -> tuple[str, int, float]:
        parts: list[str] = []
        used = 0
        async for chunk in llm.astream(text, steering=strengths):
            parts.append(str(chunk.content))
            if chunk.usage_metadata:
                used += chunk.usage_metadata["output_tokens"]
        return "".join(parts), used, time.perf_counter() - start

    done = await asyncio.gather(*(one(t, s) for t, s in zip(texts, steering, strict=True)))
    return measure(start, done)


async def run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=600)
    http = httpx.AsyncClient(base_url=server.url, timeout=600)
    llm = SteeredChatModel(
        model=args.model, max_tokens=args.tokens, max_batch_size=args.max_batch_size
    )
    warm_texts, warm_steering = prompts(2), ROW_STEERING[:2]
    await through_server(client, args.model, warm_texts, warm_steering, args.tokens)
    await direct(llm, warm_texts, warm_steering)
    result: dict[str, Any] = {
        "model": args.model,
        "max_tokens": args.tokens,
        "max_batch_size": args.max_batch_size,
        "repeats": args.repeats,
        "goal_at_8": 0.95,
        "by_clients": {},
    }
    for clients in args.clients:
        texts = prompts(clients)
        steering = [ROW_STEERING[i % len(ROW_STEERING)] for i in range(clients)]
        runs = {
            "server": partial(through_server, client, args.model, texts, steering, args.tokens),
            "server-raw": partial(
                through_server_raw, http, args.model, texts, steering, args.tokens
            ),
            "direct": partial(direct, llm, texts, steering),
        }
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
        for round_ in range(args.repeats):
            for name in list(runs) if round_ % 2 == 0 else list(runs)[::-1]:
                rounds[name].append(await runs[name]())
                print(
                    f"{clients} clients, round {round_ + 1}, {name}: "
                    f"{rounds[name][-1]['throughput']:.1f} tok/s, wall {rounds[name][-1]['wall_s']:.1f} s",
                    flush=True,
                )
        entry: dict[str, Any] = {}
        for path in ("server", "server-raw"):
            pairs = list(zip(rounds[path], rounds["direct"], strict=True))
            entry[f"{path}/direct"] = summary([s["throughput"] / d["throughput"] for s, d in pairs])
            entry[f"{path} same replies"] = all(s["replies"] == d["replies"] for s, d in pairs)
        for name, values in rounds.items():
            entry[name] = {
                key: summary([v[key] for v in values])
                for key in ("throughput", "wall_s", "p50_s", "p95_s", "tokens")
            }
        result["by_clients"][str(clients)] = entry
    await client.close()
    await http.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--json", help="output file (default: benchmarks/results/server.json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="steer-bench-server-") as folder:
        server = ServerProcess(args.model, args.max_batch_size, Path(folder))
        try:
            server.wait_ready()
            result = asyncio.run(run(args, server))
        finally:
            server.stop()
    rows = []
    for clients, entry in result["by_clients"].items():
        for name in ("server", "server-raw", "direct"):
            r = entry[name]
            rows.append(
                [
                    clients,
                    name,
                    spread(r["throughput"], 1),
                    f"{r['p50_s']['median']:.2f}",
                    f"{r['p95_s']['median']:.2f}",
                    f"{r['tokens']['median']:.0f}",
                    spread(entry[f"{name}/direct"], 3) if name != "direct" else "",
                    str(entry[f"{name} same replies"]) if name != "direct" else "",
                ]
            )
    print()
    print(
        table(
            [
                "clients",
                "path",
                "throughput tok/s (median, min–max)",
                "p50 latency s",
                "p95 latency s",
                "tokens",
                "server/direct",
                "same replies",
            ],
            rows,
        )
    )
    print(f"\ngoal: server/direct ≥ {result['goal_at_8']} at 8 clients")
    print(f"wrote {write_json('server', result, args.json)}")


if __name__ == "__main__":
    main()
