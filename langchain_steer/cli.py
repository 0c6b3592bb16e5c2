"""The ``langchain-steer`` command line: ``extract``, ``chat``, ``demo``, ``agent`` and ``eval``.

A thin layer: it parses arguments, calls the library, and prints. It is the only module that prints
or configures logging.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_steer.dimensions import (
    DIMENSIONS,
    PLANNER_SYSTEM_PROMPT,
    builtin_vectors,
    everyday_requests,
    load_dimension,
)
from langchain_steer.extract import Example
from langchain_steer.generate import generate_batch
from langchain_steer.hooks import MAX_STRENGTH
from langchain_steer.models import load_model
from langchain_steer.vectors import SteeringVector, load_vectors

# The shipped vectors are extracted and calibrated under the planner system prompt; "" turns it off.
DEFAULT_SYSTEM: str = PLANNER_SYSTEM_PROMPT
# A mild penalty: greedy replies of the 135M demo model otherwise loop on about one request in ten.
DEMO_REPETITION_PENALTY = 1.1


def _parse_steer(items: Sequence[str]) -> dict[str, float]:
    strengths: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--steer takes NAME=STRENGTH, e.g. cost=0.8; got {item!r}")
        try:
            strengths[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--steer {item!r}: {value!r} is not a number") from None
    return strengths


def _load_vectors(spec: str | None, model: str) -> dict[str, SteeringVector]:
    try:
        # Built-in vectors ship for "demo" only; any other model needs --vectors.
        return builtin_vectors(model) if spec is None else load_vectors(spec)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]


def _system(args: argparse.Namespace) -> str | None:
    return args.system or None


def _spec_from_file(path: Path, name: str | None) -> Any:
    """A custom dimension from an examples file (the built-in dimension JSON format)."""
    from langchain_steer.eval.judge import PoleJudge
    from langchain_steer.recipe import DimensionSpec

    try:
        raw = json.loads(path.read_text("utf-8"))
        pairs = [p for p in raw["examples"] if p.get("split", "train") == "train"]
        negative = [Example(p["prompt"], p["negative"]) for p in pairs]
        positive = [Example(p["prompt"], p["positive"]) for p in pairs]
    except FileNotFoundError:
        raise SystemExit(f"error: no examples file at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise SystemExit(
            f"error: {path} is not an examples file ({error}); see docs/engine.md for the format"
        ) from None
    poles = (raw.get("negative", "negative"), raw.get("positive", "positive"))
    dimension = name or raw.get("name", path.stem)
    words = raw.get("pole_words")
    judge = (
        PoleJudge(dimension, poles, {k: tuple(v) for k, v in words.items()})
        if words
        else PoleJudge.from_examples(
            [e.response for e in negative],
            [e.response for e in positive],
            dimension=dimension,
            poles=poles,
        )
    )
    return DimensionSpec(dimension, poles, negative, positive, judge, raw.get("pole_prompts"))


def cmd_extract(args: argparse.Namespace) -> int:
    """``langchain-steer extract``: extract, disentangle and calibrate vectors, then save them."""
    from langchain_steer.recipe import DimensionSpec, build_vectors, parse_counter_steer

    try:
        steps = [parse_counter_steer(spec) for spec in args.counter_steer]
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.examples:
        specs = [_spec_from_file(Path(args.examples), args.name)]
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
            system=_system(args),
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
    strengths = _parse_steer(args.steer)
    model, tokenizer = load_model(args.model, device=args.device)
    vectors = _load_vectors(args.vectors, args.model)
    try:
        [reply] = generate_batch(
            model,
            tokenizer,
            [_messages(args.prompt, _system(args))],
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
    vectors = _load_vectors(args.vectors, args.model)
    vocabulary = english_vocabulary()
    names = (
        args.dimensions.split(",") if args.dimensions else [n for n in DIMENSIONS if n in vectors]
    )
    levels = (-1.0, 0.0, 1.0)
    terminal = shutil.get_terminal_size((150, 40)).columns
    width = max(30, min(60, (terminal - 6) // 3))
    system = _system(args)
    print(f"system prompt: {system!r}" if system else "system prompt: none (the model's default)")
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
            [_messages(prompt, system)] * len(levels),
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
        readings = [", ".join(f"degenerate ({r})" for r in degeneration(t, vocabulary)) for t in replies]
        if name in DIMENSIONS:
            labels = PoleJudge.for_dimension(name).labels(replies)
            pole_of = {"negative": poles[0], "positive": poles[1]}
            readings = [
                "; ".join(filter(None, [f"judge reads: {pole_of.get(label, 'neither pole')}", extra]))
                for label, extra in zip(labels, readings, strict=True)
            ]
        if any(readings):
            print("-+-".join("-" * width for _ in header))
            print("\n".join(_columns(readings, width)))
        print(f"({time.perf_counter() - started:.1f} s)")
    return 0


def _eval_vectors(args: argparse.Namespace) -> tuple[dict[str, SteeringVector], list[str]]:
    """The vectors and the dimensions to evaluate, with errors a user can act on."""
    vectors = _load_vectors(args.vectors, args.model)
    names = list(vectors) if args.dimension == "all" else args.dimension.split(",")
    for name in names:
        if name not in vectors:
            raise SystemExit(f"error: no vector for {name!r}; available: {', '.join(vectors)}")
    return vectors, names


def _eval_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict[str, SteeringVector], list[str]]:
    """Model, tokenizer, vectors and the dimensions to evaluate, checked before the model loads."""
    from langchain_steer.eval.report import require_matplotlib

    if getattr(args, "prompts", 1) < 1:
        raise SystemExit("error: --prompts must be at least 1")
    if getattr(args, "plots", False):
        try:
            require_matplotlib()  # before minutes of generation, not after
        except ImportError as error:
            raise SystemExit(f"error: {error}") from None
    vectors, names = _eval_vectors(args)
    for name in names:
        if name not in DIMENSIONS and not args.examples:
            raise SystemExit(
                f"error: {name!r} is not a built-in dimension; pass --examples FILE (the extraction "
                "JSON format) for its held-out pole replies and prompts"
            )
    model, tokenizer = load_model(args.model, device=args.device)
    return model, tokenizer, vectors, names


def _eval_data(args: argparse.Namespace, name: str) -> tuple[list[str], Any]:
    """The prompts and pole corpus of an embedding sweep of ``name``: built-in data, or an examples file."""
    from langchain_steer.eval.sweep import PoleCorpus

    if args.examples:
        raw = json.loads(Path(args.examples).read_text("utf-8"))
        held = [p for p in raw["examples"] if p.get("split") == "test"] or raw["examples"]
        corpus = PoleCorpus(tuple(p["negative"] for p in held), tuple(p["positive"] for p in held))
        prompts = list(raw.get("eval_prompts") or [p["prompt"] for p in held])
    else:
        corpus = PoleCorpus.from_dimension(name)
        prompts = list(load_dimension(name).eval_prompts)
    # Evenly spaced picks keep the tasks (gifts, travel, food, recipes) balanced in a subset.
    count = min(args.prompts, len(prompts))
    picked = [prompts[(i * len(prompts)) // count] for i in range(count)]
    return picked, corpus


def _reply_settings(args: argparse.Namespace, reference: Any = None) -> Any:
    from langchain_steer.eval.settings import ReplySettings

    try:
        return ReplySettings(
            system=_system(args),
            max_new_tokens=args.max_tokens,
            repetition_penalty=args.repetition_penalty,
            batch_size=args.batch_size,
            reference=reference,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def cmd_eval_sweep(args: argparse.Namespace) -> int:
    """``langchain-steer eval sweep``: effect and fluency over a grid of strengths, with a report."""
    from langchain_steer.eval.report import write_report
    from langchain_steer.eval.sweep import run_sweep

    model, tokenizer, vectors, names = _eval_inputs(args)
    reference = load_model(args.reference, device=args.device) if args.reference else None
    settings = _reply_settings(args, reference)
    for name in names:
        prompts, corpus = _eval_data(args, name)
        try:
            result = run_sweep(
                model,
                tokenizer,
                vectors[name],
                prompts=prompts,
                corpus=corpus,
                strengths=args.strengths,
                settings=settings,
            )
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        written = write_report(result, args.out, plots=args.plots)
        low, high = result.at(min(result.strengths)), result.at(max(result.strengths))
        print(
            f"{name}: Spearman rho {result.spearman:+.3f} (means), {result.spearman_samples:+.3f} "
            f"(replies); ppl ratio {low.ppl_ratio:.2f} at {low.strength:+g}, {high.ppl_ratio:.2f} at "
            f"{high.strength:+g}; {result.settings['seconds']} s -> {written['markdown']}"
        )
    return 0


def _judge_and_instructions(args: argparse.Namespace, name: str) -> tuple[Any, Any]:
    """The pole judge and pole instructions of ``name``: built-in, or from --examples."""
    from langchain_steer.eval.judge import PoleJudge

    if args.examples:
        spec = _spec_from_file(Path(args.examples), name)
        return spec.judge, spec.instructions
    if name not in DIMENSIONS:
        raise SystemExit(
            f"error: {name!r} is not a built-in dimension; pass --examples FILE (the extraction JSON "
            "format, with 'pole_prompts' and optionally 'pole_words')"
        )
    return PoleJudge.for_dimension(name), load_dimension(name).pole_prompts


def cmd_eval_calibrate(args: argparse.Namespace) -> int:
    """``langchain-steer eval calibrate``: set each vector's ranges from generated text; write them back."""
    from langchain_steer.eval.range_calibration import calibrate_range, choose_norm
    from langchain_steer.eval.report import write_calibration_report

    if args.vectors is None:
        raise SystemExit(
            "error: eval calibrate writes the ranges back into the vector files: pass --vectors FILE "
            "or FOLDER (copy the built-in ones first to recalibrate those)"
        )
    source = Path(args.vectors)
    if args.from_report:
        # Re-decide from saved checks: no model, no generation.
        vectors, names = _eval_vectors(args)
        for name in names:
            path = Path(args.from_report) / f"{name}_calibration.json"
            try:
                saved = json.loads(path.read_text("utf-8"))
                ranges = {}
                for side in ("negative", "positive"):
                    norm, _, stopped = choose_norm(
                        saved["checks"][side],
                        max_ratio=args.max_ppl_ratio,
                        max_degenerate=args.max_degenerate,
                        tolerance=args.tolerance,
                    )
                    if norm == 0:
                        raise ValueError(
                            f"no saved grid norm qualifies on the {side} side ({stopped})"
                        )
                    ranges[side] = norm
            except FileNotFoundError:
                raise SystemExit(f"error: no saved calibration at {path}") from None
            except (KeyError, TypeError, ValueError) as error:
                raise SystemExit(f"error: {name}: {error}") from None
            details = {**saved["details"], "max_ratio": args.max_ppl_ratio, "re_decided": True}
            vector = dataclasses.replace(
                vectors[name],
                functional_range=ranges["positive"],
                negative_range=ranges["negative"],
                extra={**vectors[name].extra, "calibration": details},
            )
            _save_calibrated(source, name, vectors[name], vector)
        return 0
    model, tokenizer, vectors, names = _eval_inputs(args)
    prompts = everyday_requests("dev")[: args.prompts]
    for name in names:
        judge, instructions = _judge_and_instructions(args, name)
        if instructions is None:
            raise SystemExit(
                f"error: {name}: calibration needs 'pole_prompts' in the examples file"
            )
        try:
            outcome = calibrate_range(
                model,
                tokenizer,
                vectors[name],
                prompts=prompts,
                judge=judge,
                instructions=instructions,
                fractions=args.fractions,
                max_ratio=args.max_ppl_ratio,
                max_degenerate=args.max_degenerate,
                tolerance=args.tolerance,
                settings=_reply_settings(args),
            )
        except ValueError as error:
            raise SystemExit(f"error: {name}: {error}") from None
        if args.report:
            write_calibration_report(outcome, args.report)
        _save_calibrated(source, name, vectors[name], outcome.vector)
        for side in ("negative", "positive"):
            print(f"  {side}: stopped by {outcome.stopped_by[side]}")
    return 0


def _save_calibrated(
    source: Path, name: str, before: SteeringVector, after: SteeringVector
) -> None:
    target = _vector_file(source, name)
    after.save(target)
    print(
        f"{name}: ranges -{before.negative_side[1]:g} / +{before.functional_range:g} -> "
        f"-{after.negative_side[1]:g} / +{after.functional_range:g} -> {target}"
    )


def _vector_file(source: Path, name: str) -> Path:
    """The file a vector named ``name`` was loaded from (a file, or ``<folder>/<name>.safetensors``)."""
    if source.is_file():
        return source
    for file in sorted(source.glob("*.safetensors")):
        if (SteeringVector.load(file).name or file.stem) == name:
            return file
    return source / f"{name}.safetensors"


def cmd_eval_poles(args: argparse.Namespace) -> int:
    """``langchain-steer eval poles``: pole shares, fluency and cross-effects on everyday requests."""
    from langchain_steer.eval.pole_eval import PoleEvaluation, evaluate_poles
    from langchain_steer.eval.report import write_pole_report

    if args.rejudge:
        try:
            saved = PoleEvaluation.from_dict(json.loads(Path(args.rejudge).read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"error: cannot read the report {args.rejudge}: {error}") from None
        judged = {d for r in saved.replies for d in r.labels}
        evaluation = saved.rejudged({n: _judge_and_instructions(args, n)[0] for n in sorted(judged)})
        written = write_pole_report(evaluation, args.out)
        print(written["markdown"].read_text("utf-8"))
        return 0
    model, tokenizer, vectors, names = _eval_inputs(args)
    prompts = everyday_requests(args.split)[: args.prompts]
    judges, instructions = {}, {}
    for name in vectors:
        if name in names or name in DIMENSIONS:
            judges[name], pole_prompts = _judge_and_instructions(args, name)
            if pole_prompts:
                instructions[name] = pole_prompts
    reference = load_model(args.reference, device=args.device) if args.reference else None
    try:
        evaluation = evaluate_poles(
            model,
            tokenizer,
            vectors,
            prompts=prompts,
            judges=judges,
            instructions=instructions,
            dimensions=names,
            strengths=args.strengths,
            settings=_reply_settings(args, reference),
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    written = write_pole_report(evaluation, args.out)
    print(written["markdown"].read_text("utf-8"))
    return 0


def cmd_eval_diagnose(args: argparse.Namespace) -> int:
    """``langchain-steer eval diagnose``: probe accuracy per layer, cosines, relative norms."""
    from langchain_steer.eval.diagnostics import diagnose
    from langchain_steer.eval.report import write_diagnostics

    args.dimension = "all"
    model, tokenizer, vectors, _ = _eval_inputs(args)
    # Four neutral requests per built-in dimension (one per task) are plenty for a median norm.
    prompts = [
        p for name in vectors if name in DIMENSIONS for p in load_dimension(name).eval_prompts[::5]
    ]
    examples = (
        {name: load_dimension(name).examples("train") for name in vectors if name in DIMENSIONS}
        if args.recompute
        else None
    )
    try:
        result = diagnose(model, tokenizer, vectors, prompts or ["Hello!"], examples=examples)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    written = write_diagnostics(result, args.out, plots=args.plots)
    print(written["markdown"].read_text("utf-8"))
    return 0


AGENT_HELP = (
    """commands: /set NAME=VALUE ... (set strengths), /prefs (show them), /quit (or Ctrl-D)"""
)


def _show_preferences(preferences: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:+.2f}" for name, value in preferences.items())


def _ask_elicitation(payload: dict[str, Any], read: Any) -> str:
    print(f"\n[calibrate {payload['dimension']}, round {payload['round']}/{payload['rounds']}]")
    for label in ("A", "B"):
        print(f"  {label} ({payload['strengths'][label]:+.2f}): {payload[label]}")
    while True:
        answer = read(f"{payload['question']} ").strip()
        if answer.lower() in ("a", "b", "same"):
            return answer
        print("  please answer A, B or same")


def cmd_agent(args: argparse.Namespace) -> int:
    """Interactive chat with the preference agent (reads stdin; works with a pipe too)."""
    from langchain_core.messages import HumanMessage
    from langgraph.types import Command

    from langchain_steer.agent import AgentContext, build_preference_agent
    from langchain_steer.agent.persistence import SqlitePersistence
    from langchain_steer.chat_model import SteeredChatModel
    from langchain_steer.models import cache_dir

    dimensions = args.dimensions.split(",") if args.dimensions else None
    db_path = Path(args.db) if args.db else cache_dir() / "agent.db"
    thread = args.thread or f"{args.user}-{time.strftime('%Y%m%d-%H%M%S')}"
    interactive = sys.stdin.isatty()

    def read(prompt: str) -> str:
        if interactive:
            return input(prompt)
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        print(f"{prompt}{line.rstrip()}")
        return line

    llm = SteeredChatModel(
        model=args.model,
        device=args.device,
        max_tokens=args.max_tokens,
        vectors=args.vectors,
        repetition_penalty=1.15,  # as the agent's default model: small models loop in long chats
    )
    with SqlitePersistence(db_path) as db:
        try:
            agent = build_preference_agent(
                llm,
                mode=args.mode,
                checkpointer=db.checkpointer,
                store=db.store,
                dimensions=dimensions,
                calibrate_rounds=args.rounds,
                system_prompt=_system(args),
            )
        except (TypeError, ValueError) as error:
            raise SystemExit(f"error: {error}") from None
        config = {"configurable": {"thread_id": thread}}
        context = AgentContext(user_id=args.user)
        print(f"user {args.user!r}, mode {args.mode}, thread {thread!r}, database {db_path}")
        print(AGENT_HELP)
        while True:
            try:
                text = read("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return 0
            if text == "/prefs":
                values = agent.get_state(config).values.get("preferences") or {}
                print(f"  preferences: {_show_preferences(values) or 'none yet'}")
                continue
            if text.startswith("/set"):
                try:
                    update = _parse_steer(text.split()[1:])
                    known = dimensions or llm.steering_dimensions()
                    unknown = sorted(set(update) - set(known))
                    if unknown:  # "set cots +1.00" would steer nothing, silently
                        raise ValueError(
                            f"unknown dimension {unknown[0]!r}; known: {', '.join(known)}"
                        )
                    # As if the last reply had just been written: nothing is left pending in the thread.
                    agent.update_state(config, {"preferences": update}, as_node="respond")
                except (SystemExit, ValueError) as error:
                    print(f"  {error}")
                    continue
                print(f"  set {_show_preferences(update)}")
                continue
            try:
                result = agent.invoke({"messages": [HumanMessage(text)]}, config, context=context)
                while result.get("__interrupt__"):
                    choice = _ask_elicitation(result["__interrupt__"][0].value, read)
                    result = agent.invoke(Command(resume=choice), config, context=context)
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            except ValueError as error:
                print(f"  error: {error}")
                continue
            print(f"assistant> {result['messages'][-1].content}")
            print(f"  [{_show_preferences(result.get('preferences', {}))}]")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``langchain-steer``."""
    parser = argparse.ArgumentParser(
        prog="langchain-steer",
        description="Steer local HuggingFace chat models along preference dimensions.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default="demo", help="'demo', a hub id, a folder or a .gguf file")
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: auto)")

    def system_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--system",
            default=DEFAULT_SYSTEM,
            help="system prompt (default: the lifestyle-planning prompt the shipped vectors use; "
            "'' for none)",
        )

    def penalty_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--repetition-penalty",
            type=float,
            default=DEMO_REPETITION_PENALTY,
            help="HF repetition penalty of the greedy replies (1 turns it off)",
        )

    extract = sub.add_parser(
        "extract",
        help="extract, disentangle and calibrate steering vectors from contrastive examples",
    )
    common(extract)
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
    common(chat)
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
    common(demo)
    demo.add_argument("--prompt", help="one prompt for every dimension (default: each one's own)")
    demo.add_argument("--dimensions", help="comma-separated subset")
    demo.add_argument("--vectors", help="a vector file or a folder of them (default: built-in)")
    system_option(demo)
    penalty_option(demo)
    demo.add_argument("--max-tokens", type=int, default=60)
    demo.set_defaults(func=cmd_demo)

    agent = sub.add_parser(
        "agent", help="chat with the preference agent; it shows the strengths after each turn"
    )
    common(agent)
    agent.add_argument("--user", default="me", help="whose preferences to use and remember")
    agent.add_argument("--mode", choices=["learn", "select", "calibrate"], default="learn")
    agent.add_argument(
        "--db", help="SQLite file for threads and preferences (default: in the cache)"
    )
    agent.add_argument("--thread", help="resume this conversation (default: a new one)")
    agent.add_argument(
        "--dimensions", help="comma-separated subset (calibrate: the ones to elicit)"
    )
    agent.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="A/B elicitation questions per dimension (calibrate mode, 2-4)",
    )
    agent.add_argument("--vectors", help="a folder of vector files (default: built-in)")
    system_option(agent)
    agent.add_argument("--max-tokens", type=int, default=160)
    agent.set_defaults(func=cmd_agent)

    evaluate = sub.add_parser(
        "eval", help="measure steering: pole shares, range calibration, sweeps, diagnostics"
    )
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True)

    def eval_common(p: argparse.ArgumentParser, prompts: int, max_tokens: int) -> None:
        common(p)
        p.add_argument("--vectors", help="a vector file or a folder of them (default: built-in)")
        p.add_argument(
            "--examples", help="data file (extraction JSON format) for a custom dimension"
        )
        p.add_argument("--prompts", type=int, default=prompts, help="how many requests to use")
        p.add_argument("--max-tokens", type=int, default=max_tokens, help="reply length")
        p.add_argument("--batch-size", type=int, default=16, help="replies per batched generate")
        system_option(p)
        penalty_option(p)

    poles = eval_sub.add_parser(
        "poles",
        help="share of replies reading as each pole, fluency against asking for the pole, "
        "cross-effects between dimensions",
    )
    eval_common(poles, prompts=40, max_tokens=48)
    poles.add_argument("--dimension", default="all", help="a dimension, a comma list, or 'all'")
    poles.add_argument(
        "--split",
        choices=["test", "dev", "confirm", "final"],
        default="test",
        help="everyday requests: the 40 held-out ones (default), the development ones, the 40 "
        "'confirm' ones kept for checking a change made after seeing 'test', or the 40 'final' ones "
        "kept for a change made after seeing 'confirm'",
    )
    poles.add_argument(
        "--rejudge",
        metavar="POLES_JSON",
        help="re-read the replies of a saved poles.json with the current judges (after editing a "
        "lexicon) instead of generating; writes the report to --out",
    )
    poles.add_argument(
        "--strengths",
        nargs="+",
        type=float,
        default=[-1.0, 1.0],
        metavar="S",
        help="non-zero strengths to steer each dimension at (unsteered replies are always included)",
    )
    poles.add_argument("--reference", help="an independent model to score perplexity with too")
    poles.add_argument("--out", default="eval-results", help="report folder")
    poles.set_defaults(func=cmd_eval_poles)

    sweep = eval_sub.add_parser(
        "sweep", help="the paper's embedding effect and PNE against strength: JSON, report, plots"
    )
    eval_common(sweep, prompts=20, max_tokens=48)
    sweep.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    sweep.add_argument("--dimension", required=True, help="a dimension, a comma list, or 'all'")
    sweep.add_argument(
        "--strengths",
        nargs="+",
        type=float,
        default=[-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
        metavar="S",
        help="strengths to sweep, including 0, e.g. --strengths -1 -0.5 0 0.5 1",
    )
    sweep.add_argument("--reference", help="an independent model to score perplexity with too")
    sweep.add_argument("--out", default="eval-results", help="report folder")
    sweep.set_defaults(func=cmd_eval_sweep)

    calibrate = eval_sub.add_parser(
        "calibrate",
        help="set each vector's ranges from replies generated at a grid of norms; write them back",
    )
    eval_common(calibrate, prompts=30, max_tokens=48)  # the development requests
    calibrate.add_argument("--dimension", default="all", help="a dimension, a comma list, or 'all'")
    calibrate.add_argument("--max-ppl-ratio", type=float, default=1.3)
    calibrate.add_argument(
        "--max-degenerate", type=float, default=0.05, help="largest share of degenerate replies"
    )
    calibrate.add_argument(
        "--tolerance",
        type=float,
        default=0.1,
        help="how far the pole share may fall between neighbouring grid norms",
    )
    calibrate.add_argument(
        "--fractions",
        nargs="+",
        type=float,
        default=[0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05],
        metavar="F",
        help="grid norms as fractions of the residual norm at the median steered layer",
    )
    calibrate.add_argument("--report", help="also write each calibration's checks to this folder")
    calibrate.add_argument(
        "--from-report",
        metavar="FOLDER",
        help="re-decide from the <dim>_calibration.json files a --report wrote, without generating",
    )
    calibrate.set_defaults(func=cmd_eval_calibrate)

    diagnostics = eval_sub.add_parser(
        "diagnose", help="probe accuracy per layer, cosine between dimensions, relative norms"
    )
    common(diagnostics)
    diagnostics.add_argument("--vectors", help="a folder of vector files (default: built-in)")
    diagnostics.add_argument("--examples", help=argparse.SUPPRESS)
    diagnostics.add_argument(
        "--recompute", action="store_true", help="recompute probe accuracies from the built-in data"
    )
    diagnostics.add_argument("--out", default="eval-results", help="report folder")
    diagnostics.add_argument("--no-plots", dest="plots", action="store_false")
    diagnostics.set_defaults(func=cmd_eval_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``langchain-steer`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    result: Any = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
