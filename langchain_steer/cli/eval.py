"""The ``eval`` commands: ``poles``, ``sweep``, ``calibrate`` and ``diagnose`` (see docs/eval.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from langchain_steer.cli.common import (
    dimension_from_file,
    model_options,
    penalty_option,
    spec_from_file,
    system,
    system_option,
    vectors_or_exit,
)
from langchain_steer.dimensions import DIMENSIONS, everyday_requests, load_dimension
from langchain_steer.models import load_model
from langchain_steer.vectors import SteeringVector


def _eval_vectors(args: argparse.Namespace) -> tuple[dict[str, SteeringVector], list[str]]:
    """The vectors and the dimensions to evaluate, with errors a user can act on."""
    vectors = vectors_or_exit(args.vectors, args.model)
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

    dimension = dimension_from_file(args.examples) if args.examples else load_dimension(name)
    return dimension.sweep_prompts(args.prompts), PoleCorpus.from_dimension(dimension, "held_out")


def _reply_settings(args: argparse.Namespace, reference: Any = None) -> Any:
    """How the runners generate and score replies, from the command's options."""
    from langchain_steer.eval.settings import ReplySettings

    try:
        return ReplySettings(
            system=system(args),
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
        spec = spec_from_file(args.examples, name)
        return spec.judge, spec.instructions
    if name not in DIMENSIONS:
        raise SystemExit(
            f"error: {name!r} is not a built-in dimension; pass --examples FILE (the extraction JSON "
            "format, with 'pole_prompts' and optionally 'pole_words')"
        )
    return PoleJudge.for_dimension(name), load_dimension(name).pole_prompts


def cmd_eval_calibrate(args: argparse.Namespace) -> int:
    """``langchain-steer eval calibrate``: set each vector's ranges from generated text; write them back."""
    from langchain_steer.eval.range_calibration import calibrate_range, redecide_range
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
                vector = redecide_range(
                    vectors[name],
                    saved,
                    max_ratio=args.max_ppl_ratio,
                    max_degenerate=args.max_degenerate,
                    tolerance=args.tolerance,
                )
            except FileNotFoundError:
                raise SystemExit(f"error: no saved calibration at {path}") from None
            except ValueError as error:
                raise SystemExit(f"error: {name}: {error}") from None
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
        evaluation = saved.rejudged(
            {n: _judge_and_instructions(args, n)[0] for n in sorted(judged)}
        )
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


def add_commands(sub: Any) -> None:
    """Add ``eval`` and its subcommands to the subcommands ``sub``."""
    evaluate = sub.add_parser(
        "eval", help="measure steering: pole shares, range calibration, sweeps, diagnostics"
    )
    eval_sub = evaluate.add_subparsers(dest="eval_command", required=True)

    def eval_common(p: argparse.ArgumentParser, prompts: int, max_tokens: int) -> None:
        model_options(p)
        p.add_argument("--vectors", help="a vector file or a folder of them (default: built-in)")
        p.add_argument(
            "--examples", help="data file (extraction JSON format) for a custom dimension"
        )
        p.add_argument("--prompts", type=int, default=prompts, help="how many requests to use")
        p.add_argument("--max-tokens", type=int, default=max_tokens, help="reply length")
        p.add_argument("--batch-size", type=int, default=16, help="replies per batched generate")
        system_option(p)
        penalty_option(p)

    def strengths_reference_out(p: argparse.ArgumentParser, default: list[float], help: str) -> None:
        p.add_argument("--strengths", nargs="+", type=float, default=default, metavar="S", help=help)
        p.add_argument("--reference", help="an independent model to score perplexity with too")
        p.add_argument("--out", default="eval-results", help="report folder")

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
    strengths_reference_out(
        poles,
        [-1.0, 1.0],
        "non-zero strengths to steer each dimension at (unsteered replies are always included)",
    )
    poles.set_defaults(func=cmd_eval_poles)

    sweep = eval_sub.add_parser(
        "sweep", help="the paper's embedding effect and PNE against strength: JSON, report, plots"
    )
    eval_common(sweep, prompts=20, max_tokens=48)
    sweep.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    sweep.add_argument("--dimension", required=True, help="a dimension, a comma list, or 'all'")
    strengths_reference_out(
        sweep,
        [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
        "strengths to sweep, including 0, e.g. --strengths -1 -0.5 0 0.5 1",
    )
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
    model_options(diagnostics)
    diagnostics.add_argument("--vectors", help="a folder of vector files (default: built-in)")
    diagnostics.add_argument("--examples", help=argparse.SUPPRESS)
    diagnostics.add_argument(
        "--recompute", action="store_true", help="recompute probe accuracies from the built-in data"
    )
    diagnostics.add_argument("--out", default="eval-results", help="report folder")
    diagnostics.add_argument("--no-plots", dest="plots", action="store_false")
    diagnostics.set_defaults(func=cmd_eval_diagnose)
