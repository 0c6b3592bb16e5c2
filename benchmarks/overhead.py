"""Steering overhead: tokens/s of steered generation against plain HF ``generate``, same model and tokens.

Usage: python benchmarks/overhead.py [--model demo] [--tokens 24] [--repeats 15] [--json PATH]

Cases (each against plain ``model.generate`` on the same inputs, exactly ``--tokens`` new tokens per row):

* batch 1, one dimension (``cost``), through ``steer()`` + ``generate``;
* batch 1, all five dimensions at once;
* batch 8, a different steering on every row (per-row strengths);
* the serving path: :class:`~langchain_steer.batching.BatchDecoder` (our own decode loop, as used by the
  chat model and the micro-batcher) at batch 1 and batch 8 with per-row steering;
* hooks only: one decode forward pass with and without the hooks, ``--pairs`` times. Whole ``generate``
  runs on a shared machine vary by several per cent from run to run, more than the hooks cost; many short
  paired passes measure the hooks' own per-token cost precisely.

Goal: ratio ≥ 0.99 at batch 1 and ≥ 0.97 at batch 8. The ratio is taken per repetition (plain and steered
run back to back, in alternating order) and its median is reported.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import side_by_side, spread, summary, table, write_json

from langchain_steer import apply_steering, builtin_vectors, load_dimension, load_model, steer
from langchain_steer.batching import BatchDecoder, GenerationRequest, Ticket
from langchain_steer.hooks import layer_offsets
from langchain_steer.prompts import render_chat

DIMENSIONS = ["cost", "ambiance", "age", "time", "culture"]
ROW_STEERING = [
    {"cost": -1.0},
    {"cost": 1.0},
    {"age": -1.0},
    {"time": 1.0},
    {"culture": -1.0},
    {"ambiance": 1.0},
    {"cost": 0.5, "age": 0.5},
    {"cost": -0.5, "time": -0.5, "culture": 0.5},
]


def prompts(count: int) -> list[str]:
    """Neutral prompts from the dimensions' evaluation sets, cycled to ``count``."""
    pool = [p for name in DIMENSIONS for p in load_dimension(name).eval_prompts]
    return [pool[i % len(pool)] for i in range(count)]


def encode(tokenizer: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    rendered = [render_chat(tokenizer, [{"role": "user", "content": t}]) for t in texts]
    return dict(
        tokenizer(
            rendered,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            add_special_tokens=False,
        )
    )


def hf_generate(
    model: Any, tokenizer: Any, inputs: dict[str, torch.Tensor], tokens: int
) -> Callable[[], Any]:
    settings = {
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,  # exactly `tokens` per row: both sides decode the same amount
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def run() -> Any:
        with torch.no_grad():
            return model.generate(**inputs, **settings)

    return run


def steered(run: Callable[[], Any], model: Any, vectors: Any, strengths: Any) -> Callable[[], Any]:
    def go() -> Any:
        with steer(model, vectors, strengths):
            return run()

    return go


def decoder_run(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    steering: list[dict[str, float]],
    vectors: Any,
    tokens: int,
) -> Callable[[], Any]:
    ids = [
        tokenizer(
            render_chat(tokenizer, [{"role": "user", "content": t}]),
            add_special_tokens=False,
        )["input_ids"]
        for t in texts
    ]

    def run() -> None:
        # No EOS: every row decodes exactly `tokens`, like min_new_tokens on the HF side.
        tickets = [
            Ticket(GenerationRequest(row, tokens, offsets=layer_offsets(vectors, s)))
            for row, s in zip(ids, steering, strict=False)
        ]
        decoder = BatchDecoder(model)
        try:
            decoder.admit(tickets)
            while decoder.rows:
                decoder.step()
        finally:
            decoder.close()

    return run


def forward_pairs(
    model: Any, inputs: dict[str, torch.Tensor], vectors: Any, strengths: Any, pairs: int
) -> dict[str, Any]:
    """Per-token cost of the hooks alone: one decode forward pass with and without them, ``pairs`` times.

    The hooks are registered once, outside the timed region (registration is per call, not per token, and
    is part of the ``generate`` cases). Each pair times the same forward pass twice, in alternating order,
    on a KV cache that is cropped back after every pass.
    """
    with torch.no_grad():
        out = model(**inputs, use_cache=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    batch, length = inputs["input_ids"].shape
    step = {
        "input_ids": out.logits[:, -1:].argmax(-1),
        "attention_mask": torch.cat(
            [inputs["attention_mask"], torch.ones(batch, 1, dtype=torch.long)], 1
        ),
        "position_ids": inputs["attention_mask"].sum(1, keepdim=True),
    }
    cache_argument = (
        "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    )

    def one() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model(**step, **{cache_argument: cache}, use_cache=True, logits_to_keep=1)
        elapsed = time.perf_counter() - start
        cache.crop(-1)
        return elapsed

    ratios = []
    handle = None
    for i in range(pairs + 5):
        timings = {}
        for steered_pass in (False, True) if i % 2 == 0 else (True, False):
            if steered_pass:
                handle = apply_steering(model, vectors, strengths)
            try:
                timings[steered_pass] = one()
            finally:
                if handle is not None:
                    handle.remove()
                    handle = None
        if i >= 5:  # warm-up pairs
            ratios.append(timings[False] / timings[True])
    return summary(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--pairs", type=int, default=200, help="forward-pass pairs for the hook-only cases"
    )
    parser.add_argument("--json", help="output file (default: benchmarks/results/overhead.json)")
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    vectors = builtin_vectors(args.model)
    one = prompts(1)
    eight = prompts(8)
    per_row = {name: [float(s.get(name, 0.0)) for s in ROW_STEERING] for name in DIMENSIONS}
    five = {"cost": 1.0, "ambiance": -1.0, "age": 1.0, "time": -1.0, "culture": 1.0}
    plain1 = hf_generate(model, tokenizer, encode(tokenizer, one), args.tokens)
    plain8 = hf_generate(model, tokenizer, encode(tokenizer, eight), args.tokens)
    cases = [
        (
            "batch 1, one dimension (steer + generate)",
            1,
            plain1,
            steered(plain1, model, vectors, {"cost": 1.0}),
        ),
        (
            "batch 1, five dimensions (steer + generate)",
            1,
            plain1,
            steered(plain1, model, vectors, five),
        ),
        (
            "batch 8, per-row steering (steer + generate)",
            8,
            plain8,
            steered(plain8, model, vectors, per_row),
        ),
        (
            "batch 1, one dimension (BatchDecoder)",
            1,
            plain1,
            decoder_run(model, tokenizer, one, [{"cost": 1.0}], vectors, args.tokens),
        ),
        (
            "batch 8, per-row steering (BatchDecoder)",
            8,
            plain8,
            decoder_run(model, tokenizer, eight, ROW_STEERING, vectors, args.tokens),
        ),
    ]
    results = []
    for label, batch, plain, steered_run in cases:
        seconds = side_by_side({"plain": plain, "steered": steered_run}, repeats=args.repeats)
        tokens = batch * args.tokens
        ratios = [p / s for p, s in zip(seconds["plain"], seconds["steered"], strict=False)]
        results.append(
            {
                "case": label,
                "batch": batch,
                "new_tokens_per_row": args.tokens,
                "plain_tokens_per_s": summary([tokens / s for s in seconds["plain"]]),
                "steered_tokens_per_s": summary([tokens / s for s in seconds["steered"]]),
                "ratio": summary(ratios),
                "goal": 0.99 if batch == 1 else 0.97,
            }
        )
        print(f"{label}: ratio {spread(results[-1]['ratio'])}", flush=True)
    print()
    print(
        table(
            ["case", "plain tok/s", "steered tok/s", "ratio (median, min–max)", "goal"],
            [
                [
                    r["case"],
                    f"{r['plain_tokens_per_s']['median']:.1f}",
                    f"{r['steered_tokens_per_s']['median']:.1f}",
                    spread(r["ratio"]),
                    f"≥{r['goal']}",
                ]
                for r in results
            ],
        )
    )
    hooks_only = []
    for label, inputs, strengths in (
        ("batch 1, five dimensions", encode(tokenizer, one), five),
        ("batch 8, per-row steering", encode(tokenizer, eight), per_row),
    ):
        hooks_only.append(
            {"case": label, "ratio": forward_pairs(model, inputs, vectors, strengths, args.pairs)}
        )
        print(f"hooks only, {label}: ratio {spread(hooks_only[-1]['ratio'], 4)}", flush=True)
    print()
    print(
        table(
            [
                "hooks only: one decode forward pass",
                "ratio plain/steered (median, min–max)",
                "pairs",
            ],
            [[r["case"], spread(r["ratio"], 4), r["ratio"]["n"]] for r in hooks_only],
        )
    )
    path = write_json(
        "overhead",
        {
            "model": args.model,
            "tokens": args.tokens,
            "repeats": args.repeats,
            "results": results,
            "hooks_only": hooks_only,
        },
        args.json,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
