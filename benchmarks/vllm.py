"""The vLLM engine: steering's cost inside vLLM, vLLM against our HF engine, and against vllm-lens.

Usage (in the vLLM venv: ``make bench-vllm``): python benchmarks/vllm.py [--clients 1 8 32] [--tokens 48]
[--repeats 3] [--dtypes bfloat16 float32] [--json PATH]

Every request has its own strengths (five dimensions, drawn at random per request), so a batch of 32 holds
32 distinct steerings. Prefix caching is off in every engine here, so that no side gains from shared
prompt blocks. Three comparisons, each side by side in one run, alternating the order every repetition:

1. **Steered against unsteered vLLM**, per dtype: our engine with every request steered, against plain vLLM
   (no steering installed at all) on the same prompts. Goal: ≥0.95 of unsteered throughput at 32 distinct
   steerings.
2. **Our vLLM engine against our HF engine**, float32 on both, the same steered requests: throughput and
   p95 latency.
3. **Our extension against vllm-lens** (when installed: ``make bench-vllm`` installs it), the same vectors:
   vllm-lens receives each request's offsets as a ``SteeringVector`` (one activation row per steered layer)
   through its ``apply_steering_vectors`` extra argument; ours receives the strengths.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from _common import spread, summary, table, write_json
from overhead import DIMENSIONS, prompts
from serving import measure

from langchain_steer import SteeredChatModel, builtin_vectors
from langchain_steer.engines.vllm import close_engines
from langchain_steer.hooks import layer_offsets

# This file is named like the package it measures: move its folder to the end of the path, so that `import
# vllm` finds vLLM, not this script (vLLM's spawned processes, which re-import this file, still find the
# helpers beside it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [e for e in sys.path if Path(e or ".").resolve() != _HERE] + [str(_HERE)]


def steerings(count: int, seed: int = 0) -> list[dict[str, float]]:
    """``count`` distinct random steerings over the five dimensions, strengths in [-1, 1]."""
    rng = random.Random(seed)
    return [{name: round(rng.uniform(-1, 1), 3) for name in DIMENSIONS} for _ in range(count)]


async def through_chat_model(
    llm: SteeredChatModel, texts: list[str], steering: list[dict[str, float]]
) -> dict[str, Any]:
    start = time.perf_counter()

    async def one(text: str, strengths: dict[str, float]) -> tuple[str, int, float]:
        reply = await llm.ainvoke(text, steering=strengths)
        return str(reply.content), reply.usage_metadata["output_tokens"], time.perf_counter() - start

    return measure(start, await asyncio.gather(*(one(t, s) for t, s in zip(texts, steering, strict=True))))


async def side_by_side(runs: dict[str, Any], repeats: int, label: str) -> dict[str, list[dict[str, Any]]]:
    names = list(runs)
    for name in names:  # warm-up
        await runs[name]()
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else names[::-1]:
            rounds[name].append(await runs[name]())
            speed = rounds[name][-1]["throughput"]
            print(f"{label}, round {round_ + 1}, {name}: {speed:.1f} tok/s", flush=True)
    return rounds


def _entry(rounds: dict[str, list[dict[str, Any]]], a: str, b: str) -> dict[str, Any]:
    pairs = list(zip(rounds[a], rounds[b], strict=True))
    entry: dict[str, Any] = {
        f"{a}/{b}": summary([x["throughput"] / y["throughput"] for x, y in pairs]),
        "same_replies": all(x["replies"] == y["replies"] for x, y in pairs),
    }
    for name, values in rounds.items():
        entry[name] = {k: summary([v[k] for v in values]) for k in ("throughput", "p50_s", "p95_s", "tokens")}
    return entry


async def steered_vs_unsteered(args: argparse.Namespace, dtype: str) -> dict[str, Any]:
    settings = {
        "engine": "vllm", "dtype": dtype, "max_tokens": args.tokens, "max_batch_size": max(args.clients),
        "engine_args": {"enable_prefix_caching": False},
    }  # fmt: skip
    steered = SteeredChatModel(**settings)
    plain = SteeredChatModel(**settings, vectors={})
    results: dict[str, Any] = {}
    for clients in args.clients:
        texts, steering = prompts(clients), steerings(clients)
        rounds = await side_by_side(
            {
                "unsteered": lambda t=texts: through_chat_model(plain, t, [{}] * len(t)),
                "steered": lambda t=texts, s=steering: through_chat_model(steered, t, s),
            },
            args.repeats,
            f"vLLM {dtype}, {clients} clients",
        )
        results[str(clients)] = _entry(rounds, "steered", "unsteered")
    close_engines()
    return results


async def vllm_vs_hf(args: argparse.Namespace) -> dict[str, Any]:
    ours = SteeredChatModel(
        engine="vllm", dtype="float32", max_tokens=args.tokens, max_batch_size=max(args.clients),
        engine_args={"enable_prefix_caching": False},
    )  # fmt: skip
    hf = SteeredChatModel(dtype="float32", max_tokens=args.tokens, max_batch_size=max(args.clients))
    results: dict[str, Any] = {}
    for clients in args.clients:
        texts, steering = prompts(clients), steerings(clients)
        rounds = await side_by_side(
            {
                "vllm": lambda t=texts, s=steering: through_chat_model(ours, t, s),
                "hf": lambda t=texts, s=steering: through_chat_model(hf, t, s),
            },
            args.repeats,
            f"vLLM vs HF, {clients} clients",
        )
        results[str(clients)] = _entry(rounds, "vllm", "hf")
    close_engines()
    return results


async def against_vllm_lens(args: argparse.Namespace) -> dict[str, Any]:
    """Raw AsyncLLM engines: ours (worker extension + basis) and vllm-lens's (its plugin), same requests."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM
    from vllm_lens import SteeringVector as LensVector

    from langchain_steer.engines.basis import SteeringBasis
    from langchain_steer.engines.vllm import WORKER_EXTENSION, load

    vectors = builtin_vectors("demo")
    skeleton, tokenizer = load("demo")
    folder = SteeredChatModel(engine="vllm").batcher().folder
    close_engines()
    common = {
        "model": folder, "dtype": "float32", "enforce_eager": True, "max_num_seqs": max(args.clients),
        "enable_prefix_caching": False, "generation_config": "vllm", "seed": 0,
    }  # fmt: skip
    ours = AsyncLLM.from_engine_args(AsyncEngineArgs(**common, worker_extension_cls=WORKER_EXTENSION))
    await ours.collective_rpc("install_steering", args=(SteeringBasis.from_vectors(vectors).to_bytes(),))
    lens = AsyncLLM.from_engine_args(AsyncEngineArgs(**common))

    def prompt_ids(text: str) -> list[int]:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def ours_params(strengths: dict[str, float]) -> Any:
        return SamplingParams(max_tokens=args.tokens, temperature=0, extra_args={"steering": strengths})

    def lens_params(strengths: dict[str, float]) -> Any:
        offsets = layer_offsets(vectors, strengths)
        layers = sorted(offsets)
        steering_vector = LensVector(
            activations=torch.stack([offsets[k] for k in layers]), layer_indices=layers
        )
        return SamplingParams(
            max_tokens=args.tokens, temperature=0, extra_args={"apply_steering_vectors": [steering_vector]}
        )

    async def run(engine: Any, make_params: Any, texts: list[str], steering: list[dict[str, float]]) -> Any:
        start = time.perf_counter()

        async def one(text: str, strengths: dict[str, float]) -> tuple[str, int, float]:
            final = None
            async for output in engine.generate(
                {"prompt_token_ids": prompt_ids(text)}, make_params(strengths), uuid.uuid4().hex
            ):
                final = output
            assert final is not None
            return final.outputs[0].text, len(final.outputs[0].token_ids), time.perf_counter() - start

        done = await asyncio.gather(*(one(t, s) for t, s in zip(texts, steering, strict=True)))
        return measure(start, done)

    results: dict[str, Any] = {}
    for clients in [c for c in args.clients if c > 1]:
        texts, steering = prompts(clients), steerings(clients)
        rounds = await side_by_side(
            {
                "langchain-steer": lambda t=texts, s=steering: run(ours, ours_params, t, s),
                "vllm-lens": lambda t=texts, s=steering: run(lens, lens_params, t, s),
            },
            args.repeats,
            f"ours vs vllm-lens, {clients} clients",
        )
        results[str(clients)] = _entry(rounds, "langchain-steer", "vllm-lens")
    ours.shutdown()
    lens.shutdown()
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"max_tokens": args.tokens, "repeats": args.repeats, "clients": args.clients}
    result["steered_vs_unsteered"] = {dtype: await steered_vs_unsteered(args, dtype) for dtype in args.dtypes}
    result["vllm_vs_hf"] = await vllm_vs_hf(args)
    if importlib.util.find_spec("vllm_lens") is not None and os.environ.get("VLLM_LENS_DISABLE") != "1":
        result["vs_vllm_lens"] = await against_vllm_lens(args)
    else:
        result["vs_vllm_lens"] = "skipped: vllm-lens is not installed (make bench-vllm installs it)"
    return result


def _rows(section: dict[str, Any], names: tuple[str, str], ratio: str) -> list[list[str]]:
    rows = []
    for clients, entry in section.items():
        for name in names:
            r = entry[name]
            rows.append([
                clients, name, spread(r["throughput"], 1), f"{r['p95_s']['median']:.2f}",
                spread(entry[ratio], 3) if name == names[0] else "",
                str(entry["same_replies"]) if name == names[0] else "",
            ])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--json", help="output file (default: benchmarks/results/vllm.json)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    headers = ["clients", "engine", "throughput tok/s (median, min–max)", "p95 latency s"]
    for dtype, section in result["steered_vs_unsteered"].items():
        print(f"\n### vLLM {dtype}: steered (every request its own strengths) against unsteered\n")
        rows = _rows(section, ("steered", "unsteered"), "steered/unsteered")
        print(table([*headers, "steered/unsteered", "same replies"], rows))
    print("\n### Our vLLM engine against our HF engine (float32, steered)\n")
    rows = _rows(result["vllm_vs_hf"], ("vllm", "hf"), "vllm/hf")
    print(table([*headers, "vllm/hf", "same replies"], rows))
    lens = result["vs_vllm_lens"]
    print("\n### Our extension against vllm-lens (float32, steered)\n")
    if isinstance(lens, str):
        print(lens)
    else:
        names = ("langchain-steer", "vllm-lens")
        rows = _rows(lens, names, "langchain-steer/vllm-lens")
        print(table([*headers, "ours/vllm-lens", "same replies"], rows))
    print("\n(same replies for steered/unsteered is expected False: steering changes the replies)")
    print(f"wrote {write_json('vllm', result, args.json)}")


if __name__ == "__main__":
    main()
