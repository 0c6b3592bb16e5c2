"""Peers: the same steering vector applied with langchain-steer, repeng and steering-vectors.

Usage: python benchmarks/peers.py [--model demo] [--tokens 24] [--repeats 15] [--json PATH]

Install the peers first: ``make bench-install`` (it installs repeng 0.4.0 and steering-vectors 0.12.2 with
``--no-deps``, because their pins, ``numpy<2`` and ``transformers<5``, would downgrade this environment).

The vector is the demo model's ``cost`` direction at strength +1: on each of its layers, the offset
``functional_range × direction`` is added to the decoder block's output at every position. Each library
applies exactly that offset, on the same model, prompt and number of new tokens (batch 1, greedy, exactly
``--tokens`` tokens), so the reported overhead is the cost of each library's hooks. The check column says
whether each library produced the same tokens as langchain-steer.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import side_by_side, spread, summary, table, write_json
from overhead import encode, hf_generate, prompts

from langchain_steer import builtin_vectors, load_model, steer

if not hasattr(np, "float_"):
    # repeng 0.4.0 names np.float_ in a type annotation evaluated at import; NumPy 2 removed the alias.
    np.float_ = np.float64  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="output file (default: benchmarks/results/peers.json)")
    args = parser.parse_args()
    try:
        import repeng
        import steering_vectors
    except ImportError as error:
        raise SystemExit(f"{error}. Install the peers with `make bench-install`.") from error

    model, tokenizer = load_model(args.model)
    vector = builtin_vectors(args.model)["cost"]
    offsets = {
        layer: o.float() for layer, o in vector.offsets(1.0).items()
    }  # what strength +1 adds
    plain = hf_generate(model, tokenizer, encode(tokenizer, prompts(1)), args.tokens)

    def ours() -> Any:
        with steer(model, {"cost": vector}, {"cost": 1.0}):
            return plain()

    def with_repeng() -> Any:
        control = repeng.ControlVector(
            model_type=model.config.model_type,
            directions={layer: o.numpy() for layer, o in offsets.items()},
        )
        wrapped = repeng.ControlModel(model, list(offsets))  # wraps the blocks in place...
        try:
            wrapped.set_control(control, coeff=1.0)
            return plain()
        finally:
            wrapped.unwrap()  # ...so unwrap, leaving the model as it was for the other runs

    sv = steering_vectors.SteeringVector(layer_activations=offsets, layer_type="decoder_block")

    def with_steering_vectors() -> Any:
        with sv.apply(model, multiplier=1.0):
            return plain()

    runs: dict[str, Callable[[], Any]] = {
        "plain generate": plain,
        "langchain-steer": ours,
        "repeng 0.4.0": with_repeng,
        "steering-vectors 0.12.2": with_steering_vectors,
    }
    reference = ours()[0].tolist()
    same = {
        name: run()[0].tolist() == reference
        for name, run in runs.items()
        if name != "plain generate"
    }
    seconds = side_by_side(runs, repeats=args.repeats)
    results = []
    for name in runs:
        ratios = [p / s for p, s in zip(seconds["plain generate"], seconds[name], strict=False)]
        results.append(
            {
                "library": name,
                "tokens_per_s": summary([args.tokens / s for s in seconds[name]]),
                "ratio_to_plain": summary(ratios),
                "same_tokens_as_langchain_steer": same.get(name),  # None for plain (unsteered)
            }
        )
    print(
        table(
            [
                "library",
                "tok/s",
                "ratio to plain generate (median, min–max)",
                "same tokens as ours",
            ],
            [
                [
                    r["library"],
                    f"{r['tokens_per_s']['median']:.1f}",
                    spread(r["ratio_to_plain"]),
                    "n/a (unsteered)"
                    if r["library"] == "plain generate"
                    else r["same_tokens_as_langchain_steer"],
                ]
                for r in results
            ],
        )
    )
    path = write_json(
        "peers",
        {
            "model": args.model,
            "tokens": args.tokens,
            "repeats": args.repeats,
            "batch": 1,
            "results": results,
        },
        args.json,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
