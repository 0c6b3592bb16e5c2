"""The engine commands: ``extract`` (make vectors), ``chat`` (one steered reply), ``demo`` (side by side)."""

from __future__ import annotations

import argparse
import shutil
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_steer.cli.common import (
    messages,
    model_options,
    parse_steer,
    penalty_option,
    spec_from_file,
    system,
    system_option,
    vectors_or_exit,
)
from langchain_steer.dimensions import DIMENSIONS, everyday_requests, load_dimension
from langchain_steer.generate import generate_batch
from langchain_steer.hooks import MAX_STRENGTH
from langchain_steer.models import load_model
from langchain_steer.vectors import SteeringVector


def cmd_extract(args: argparse.Namespace) -> int:
    """``langchain-steer extract``: extract, disentangle and calibrate vectors, then save them."""
    from langchain_steer.recipe import DimensionSpec, build_vectors, parse_counter_steer

    try:
        steps = [parse_counter_steer(spec) for spec in args.counter_steer]
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.examples:
        specs = [spec_from_file(args.examples, args.name)]
    else:
        names = DIMENSIONS if args.dimension == "all" else (args.dimension,)
        specs = [DimensionSpec.builtin(name) for name in names]
    if args.calibrate and any(s.instructions is None for s in specs):
        raise SystemExit(
            'error: calibration needs \'pole_prompts\' ({"negative": ..., "positive": ...}: what a user '
            "says to ask for each pole) in the examples file; add them or pass --no-calibrate"
        )
    model, tokenizer = load_model(args.model, device=args.device)
    out = Path(args.out)
    single = len(specs) == 1 and bool(out.suffix) and not out.is_dir()
    started = time.perf_counter()

    def save(vector: SteeringVector) -> None:
        target = out if single else out / f"{vector.name}.safetensors"
        vector.save(target)
        ranges = f"-{vector.negative_side[1]:g} / +{vector.functional_range:g}"
        print(
            f"{vector.name}: layers {vector.layers[0]}-{vector.layers[-1]}, method {vector.method}, "
            f"ranges {ranges} -> {target} ({time.perf_counter() - started:.0f} s)"
        )

    try:
        build_vectors(
            model,
            tokenizer,
            specs,
            system=system(args),
            method=args.method,
            layers=[int(x) for x in args.layers.split(",")] if args.layers else None,
            band=tuple(args.band),
            top_k=args.top_k,
            project_writing_system=args.script_projection,
            counter_steers=steps,
            calibrate=args.calibrate,
            calibration_prompts=everyday_requests("dev")[: args.calibration_prompts],
            max_ratio=args.max_ppl_ratio,
            batch_size=args.batch_size,
            on_vector=save,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """``langchain-steer chat``: print one steered reply."""
    strengths = parse_steer(args.steer)
    model, tokenizer = load_model(args.model, device=args.device)
    vectors = vectors_or_exit(args.vectors, args.model)
    try:
        [reply] = generate_batch(
            model,
            tokenizer,
            [messages(args.prompt, system(args))],
            vectors,
            [strengths],
            max_new_tokens=args.max_tokens,
            repetition_penalty=args.repetition_penalty,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print(reply)
    return 0


def _columns(cells: Sequence[str], width: int) -> list[str]:
    wrapped = [textwrap.wrap(c, width) or [""] for c in cells]
    height = max(len(w) for w in wrapped)
    return [
        " | ".join((w[i] if i < len(w) else "").ljust(width) for w in wrapped).rstrip()
        for i in range(height)
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    """``langchain-steer demo``: each dimension at -1 / 0 / +1, side by side."""
    from langchain_steer.eval.fluency import english_vocabulary
    from langchain_steer.eval.judge import PoleJudge
    from langchain_steer.eval.metrics import degeneration

    model, tokenizer = load_model(args.model, device=args.device)
    vectors = vectors_or_exit(args.vectors, args.model)
    vocabulary = english_vocabulary()
    names = (
        args.dimensions.split(",") if args.dimensions else [n for n in DIMENSIONS if n in vectors]
    )
    levels = (-1.0, 0.0, 1.0)
    terminal = shutil.get_terminal_size((150, 40)).columns
    width = max(30, min(60, (terminal - 6) // 3))
    prompt_system = system(args)
    print(
        f"system prompt: {prompt_system!r}"
        if prompt_system
        else "system prompt: none (the model's default)"
    )
    print(
        f"greedy, {args.max_tokens} new tokens, repetition penalty {args.repetition_penalty:g}; "
        "±1 is each pole's strongest calibrated setting"
    )
    for name in names:
        if name not in vectors:
            raise SystemExit(f"No vector for {name!r}; available: {', '.join(vectors)}")
        prompt = args.prompt or (load_dimension(name).demo_prompt if name in DIMENSIONS else "")
        started = time.perf_counter()
        # One batched generate: each row gets its own strength.
        replies = generate_batch(
            model,
            tokenizer,
            [messages(prompt, prompt_system)] * len(levels),
            vectors,
            [{name: level} for level in levels],
            max_new_tokens=args.max_tokens,
            repetition_penalty=args.repetition_penalty,
        )
        poles = vectors[name].poles
        print(f"\n=== {name}: {poles[0]} (-1) <-> {poles[1]} (+1) ===   prompt: {prompt!r}")
        header = [f"{name}=-1 ({poles[0]})", f"{name}=0", f"{name}=+1 ({poles[1]})"]
        print(" | ".join(h.ljust(width) for h in header).rstrip())
        print("-+-".join("-" * width for _ in header))
        print("\n".join(_columns(replies, width)))
        # What the eval suite reads in each reply (its pole judge, its degeneration check), so that a
        # column that does not lean to its pole, or that broke down, is said so.
        readings = [
            ", ".join(f"degenerate ({r})" for r in degeneration(t, vocabulary)) for t in replies
        ]
        if name in DIMENSIONS:
            labels = PoleJudge.for_dimension(name).labels(replies)
            pole_of = {"negative": poles[0], "positive": poles[1]}
            readings = [
                "; ".join(
                    filter(None, [f"judge reads: {pole_of.get(label, 'neither pole')}", extra])
                )
                for label, extra in zip(labels, readings, strict=True)
            ]
        if any(readings):
            print("-+-".join("-" * width for _ in header))
            print("\n".join(_columns(readings, width)))
        print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``extract``, ``chat`` and ``demo`` to the subcommands ``sub``."""
    extract = sub.add_parser(
        "extract",
        help="extract, disentangle and calibrate steering vectors from contrastive examples",
    )
    model_options(extract)
    source = extract.add_mutually_exclusive_group(required=True)
    source.add_argument("--dimension", choices=[*DIMENSIONS, "all"], help="a built-in dimension")
    source.add_argument("--examples", help="a JSON file in the built-in dimension format")
    extract.add_argument("--name", help="dimension name to store (default: from the file)")
    extract.add_argument(
        "--method",
        choices=["pole_mean", "mean_diff", "pca", "probe"],
        default="pole_mean",
        help="pole_mean: two-sided, each pole against the built-in replies (default)",
    )
    extract.add_argument(
        "--band",
        nargs=2,
        type=float,
        default=[0.55, 0.8],
        metavar=("START", "END"),
        help="depth band of steered layers, as fractions of the layer count",
    )
    extract.add_argument(
        "--top-k", type=int, help="keep only the k best layers of the band by probe"
    )
    extract.add_argument("--layers", help="explicit comma-separated layer indices")
    extract.add_argument("--batch-size", type=int, default=8)
    system_option(extract)
    extract.add_argument(
        "--no-script-projection",
        dest="script_projection",
        action="store_false",
        help="keep the writing-system direction (by default it is projected out)",
    )
    extract.add_argument(
        "--counter-steer",
        action="append",
        default=[],
        metavar="DIM:SIDE=OTHER:SIDE:WEIGHT",
        help="cancel a measured drift, e.g. age:positive=time:positive:0.8 (see docs/eval.md)",
    )
    extract.add_argument(
        "--no-calibrate",
        dest="calibrate",
        action="store_false",
        help="skip range calibration (about 5 minutes per dimension on 2 CPU cores)",
    )
    extract.add_argument("--max-ppl-ratio", type=float, default=1.3)
    extract.add_argument(
        "--calibration-prompts",
        type=int,
        default=30,
        help="how many of the 60 development requests calibration generates from (the shipped "
        "vectors used the first 30)",
    )
    extract.add_argument("--out", required=True, help="a .safetensors file, or a folder")
    extract.set_defaults(func=cmd_extract)

    chat = sub.add_parser("chat", help="one steered reply")
    model_options(chat)
    chat.add_argument("prompt")
    chat.add_argument(
        "--steer",
        action="append",
        default=[],
        metavar="NAME=STRENGTH",
        help=f"e.g. cost=0.8; strengths in [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}]",
    )
    chat.add_argument("--vectors", help="a vector file or a folder of them (default: built-in)")
    system_option(chat)
    penalty_option(chat)
    chat.add_argument("--max-tokens", type=int, default=120)
    chat.set_defaults(func=cmd_chat)

    demo = sub.add_parser("demo", help="each dimension at -1 / 0 / +1, side by side")
    model_options(demo)
    demo.add_argument("--prompt", help="one prompt for every dimension (default: each one's own)")
    demo.add_argument("--dimensions", help="comma-separated subset")
    demo.add_argument("--vectors", help="a vector file or a folder of them (default: built-in)")
    system_option(demo)
    penalty_option(demo)
    demo.add_argument("--max-tokens", type=int, default=60)
    demo.set_defaults(func=cmd_demo)
