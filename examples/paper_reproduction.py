"""Reproduce the computational experiments of Bo et al. (arXiv:2505.04260) on the embedded demo model.

Run: python examples/paper_reproduction.py [--out docs/paper_reproduction] [--prompts 10] [--users 20]

Needs ``pip install "langchain-steer[eval]"`` for the plots. About 10 minutes on 2 CPU cores.

* **E1**: a strength sweep of each of the five dimensions: effect (relative similarity of the reply's
  embedding to the held-out pole replies), perplexity under the unsteered model, PNE, Spearman's ρ.
* **E2**: prompting plus steering on ``cost``. The request states nothing, a budget or a luxury preference,
  crossed with steering at −1, 0 and +1. Additive means the interaction term
  ``E(prompt, s) − E(prompt, 0) − E(none, s) + E(none, 0)`` is small next to the main effects.
* **E3**: ``culture`` and ``age`` steered at once (the 3 × 3 grid of −1, 0, +1): the effect on each
  dimension, the cross-talk, and the fluency.
* **E4**: simulated users, each with a hidden extreme preference on one dimension, talk to the LEARN agent.
  The user is scripted: each turn is a new request from a template, plus, when the last reply did not
  lean their way (judged by the same embedding effect as E1), a templated complaint; half the users also
  state their preference in their first message. Reported: turns until the agent's value for the hidden
  dimension has the right sign and magnitude ≥ 0.5, over many seeds. All users run concurrently, so their
  replies share batched decoding.

Everything is greedy and seeded, so a rerun on the same machine repeats the numbers. Results go to
``--out``: ``results.json``, ``results.md`` (the tables) and PNG figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from langchain_steer import SteeredChatModel
from langchain_steer.agent import AgentContext, build_preference_agent
from langchain_steer.dimensions import (
    DIMENSIONS,
    PLANNER_SYSTEM_PROMPT,
    builtin_vectors,
    load_dimension,
)
from langchain_steer.embeddings import embed
from langchain_steer.eval import (
    PoleCorpus,
    ReplySettings,
    bootstrap_ci,
    generate_and_score,
    relative_similarity,
    run_sweep,
)
from langchain_steer.eval.report import plot_lines, write_json
from langchain_steer.models import load_model

# As the demo and the shipped vectors' calibration: the lifestyle-planning system prompt, and a mild
# repetition penalty (the 135M model otherwise loops in some greedy replies).
DECODING = ReplySettings(system=PLANNER_SYSTEM_PROMPT, max_new_tokens=40, repetition_penalty=1.1)

E1_STRENGTHS = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID = (-1.0, 0.0, 1.0)

# E2: what the user says about money, in front of a neutral request.
STATED = {
    "none": "",
    "budget": "I'm on a really tight budget right now. ",
    "luxury": "Money is no object for me, I want the very best. ",
}

# E4: the scripted user's lines. The agent's classifier never saw these sentences.
STATEMENTS = {
    ("cost", -1): [
        "I'm saving every penny for a house this year.",
        "Things are tight for me money-wise.",
    ],
    ("cost", 1): [
        "I just got a big bonus and want to treat myself.",
        "I love the finer things in life.",
    ],
    ("ambiance", -1): [
        "I like the famous spots that everybody has heard of.",
        "We're first-timers and want the classic popular sights.",
    ],
    ("ambiance", 1): [
        "I'd rather find the hidden gems the locals love.",
        "I can't stand crowded tourist traps.",
    ],
    ("age", -1): [
        "My two little kids are coming along.",
        "It's a family outing with the children.",
    ],
    ("age", 1): ["It's just us grown-ups this time, no kids.", "We want an adults-only night out."],
    ("time", -1): ["I'm a real night owl.", "We only have our evenings free."],
    ("time", 1): [
        "I'm an early riser and love mornings.",
        "Our free time is first thing in the morning.",
    ],
    ("culture", -1): [
        "I'm really into Asian food and culture.",
        "Japanese and Korean things are my favourite.",
    ],
    ("culture", 1): ["I love classic American stuff.", "Give me good old all-American things."],
}
COMPLAINTS = {
    ("cost", -1): ["That sounds too expensive for me. Anything cheaper?", "Hmm, that's pricey."],
    ("cost", 1): ["That sounds a bit basic. Something fancier?", "Can we go more upscale?"],
    ("ambiance", -1): [
        "That's too obscure. The well-known places, please.",
        "I want the popular spots.",
    ],
    ("ambiance", 1): ["That sounds touristy. Somewhere more local?", "Too mainstream for me."],
    ("age", -1): ["Will that work with little kids?", "It needs to be family-friendly."],
    ("age", 1): ["That sounds too kiddy.", "Something more grown-up, please."],
    ("time", -1): [
        "That's too early for me, I'm an evening person.",
        "Anything for later at night?",
    ],
    ("time", 1): ["That's too late in the day for me.", "I'd prefer something in the morning."],
    ("culture", -1): ["Could it have more of an Asian touch?", "Not very Asian, is it?"],
    ("culture", 1): ["Could it be more American?", "I was hoping for something classic American."],
}


def spread(items: list[str], count: int) -> list[str]:
    """Evenly spaced picks, so a subset keeps every task (gifts, travel, food, recipes)."""
    count = min(count, len(items))
    return [items[(i * len(items)) // count] for i in range(count)]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ci(values: list[float]) -> str:
    mean = sum(values) / len(values)
    low, high = bootstrap_ci(values, resamples=1000)
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def e1(model: Any, tokenizer: Any, vectors: dict, prompts: int, out: Path) -> tuple[dict, str]:
    results, rows = {}, []
    effect_series, ppl_series = {}, {}
    for name in DIMENSIONS:
        dimension = load_dimension(name)
        sweep = run_sweep(
            model,
            tokenizer,
            vectors[name],
            prompts=spread(dimension.eval_prompts, prompts),
            corpus=PoleCorpus.from_dimension(name),
            strengths=E1_STRENGTHS,
            settings=dataclasses.replace(DECODING, batch_size=25),
        )
        results[name] = sweep.to_dict()
        s = sweep.summaries
        low, zero, high = sweep.at(-1.0), sweep.at(0.0), sweep.at(1.0)
        rows.append(
            [
                f"{name} ({dimension.negative} ↔ {dimension.positive})",
                f"{sweep.spearman:+.2f}",
                f"{sweep.spearman_samples:+.2f}",
                f"{low.effect:+.3f}",
                f"{zero.effect:+.3f}",
                f"{high.effect:+.3f}",
                f"{low.ppl_ratio:.2f} / {high.ppl_ratio:.2f}",
                f"{low.pne:+.3f} / {high.pne:+.3f}",
            ]
        )
        # Centred on the unsteered effect, so the five dimensions share one axis.
        effect_series[name] = (
            [v.effect - zero.effect for v in s],
            [v.effect_ci[0] - zero.effect for v in s],
            [v.effect_ci[1] - zero.effect for v in s],
        )
        ppl_series[name] = (
            [v.ppl_ratio for v in s],
            [v.ppl_ci[0] / zero.ppl for v in s],
            [v.ppl_ci[1] / zero.ppl for v in s],
        )
    plot_lines(
        out / "e1_effect.png",
        list(E1_STRENGTHS),
        effect_series,
        xlabel="strength",
        ylabel="effect − effect at 0",
        title="E1: effect against strength (95 % CI)",
        hline=0.0,
    )
    plot_lines(
        out / "e1_ppl_ratio.png",
        list(E1_STRENGTHS),
        ppl_series,
        xlabel="strength",
        ylabel="perplexity / perplexity at 0",
        title="E1: fluency against strength",
        hline=1.5,
    )
    header = ["dimension", "ρ (means)", "ρ (replies)", "effect −1", "effect 0", "effect +1"]
    header += ["ppl ratio −1 / +1", "PNE −1 / +1"]
    text = "## E1: strength sweeps\n\n" + table(header, rows)
    text += "\n\n![E1 effect](e1_effect.png) ![E1 fluency](e1_ppl_ratio.png)\n"
    return results, text


def e2(model: Any, tokenizer: Any, vectors: dict, prompts: int, out: Path) -> tuple[dict, str]:
    dimension = load_dimension("cost")
    requests = spread(dimension.eval_prompts, prompts)
    rows = [
        (STATED[stated] + request, {"cost": s} if s else {})
        for stated in STATED
        for s in GRID
        for request in requests
    ]
    samples = generate_and_score(
        model,
        tokenizer,
        vectors,
        rows,
        {"cost": PoleCorpus.from_dimension("cost")},
        settings=DECODING,
    )
    cells: dict[tuple[str, float], list[float]] = {}
    for index, sample in enumerate(samples):
        stated = list(STATED)[index // (len(GRID) * len(requests))]
        cells.setdefault((stated, sample.strengths.get("cost", 0.0)), []).append(
            sample.effects["cost"]
        )
    mean = {k: sum(v) / len(v) for k, v in cells.items()}
    interactions = {
        f"{stated}@{s:+g}": mean[(stated, s)]
        - mean[(stated, 0.0)]
        - mean[("none", s)]
        + mean[("none", 0.0)]
        for stated in ("budget", "luxury")
        for s in (-1.0, 1.0)
    }
    steer_main = (mean[("none", 1.0)] - mean[("none", -1.0)]) / 2
    prompt_main = (mean[("luxury", 0.0)] - mean[("budget", 0.0)]) / 2
    grid_rows = [[stated, *[ci(cells[(stated, s)]) for s in GRID]] for stated in STATED]
    text = "## E2: prompting plus steering (cost)\n\n"
    text += table(["stated in the request", "steer −1", "steer 0", "steer +1"], grid_rows)
    text += (
        f"\n\nMain effects (half the +1/−1 difference): steering {steer_main:+.3f}, stated preference "
        f"{prompt_main:+.3f}. Interaction terms: "
        + ", ".join(f"{k} {v:+.3f}" for k, v in interactions.items())
        + ".\n"
    )
    bounds = {key: bootstrap_ci(values, resamples=1000) for key, values in cells.items()}
    plot_lines(
        out / "e2_prompt_and_steer.png",
        list(GRID),
        {
            stated: (
                [mean[(stated, s)] for s in GRID],
                [bounds[(stated, s)][0] for s in GRID],
                [bounds[(stated, s)][1] for s in GRID],
            )
            for stated in STATED
        },
        xlabel="cost strength",
        ylabel="effect (→ luxury)",
        title="E2: stated preference × steering",
    )
    text += "\n![E2](e2_prompt_and_steer.png)\n"
    return {
        "cells": {f"{k[0]}@{k[1]:+g}": v for k, v in cells.items()},
        "interactions": interactions,
        "steer_main": steer_main,
        "prompt_main": prompt_main,
        "samples": [dataclasses.asdict(s) for s in samples],
    }, text


def e3(model: Any, tokenizer: Any, vectors: dict, prompts: int, out: Path) -> tuple[dict, str]:
    requests = spread(load_dimension("culture").eval_prompts, prompts // 2 + prompts % 2)
    requests += spread(load_dimension("age").eval_prompts, prompts // 2)
    corpora = {name: PoleCorpus.from_dimension(name) for name in ("culture", "age")}
    rows = []
    for c in GRID:
        for a in GRID:
            strengths = {k: v for k, v in (("culture", c), ("age", a)) if v}
            rows += [(request, strengths) for request in requests]
    samples = generate_and_score(
        model, tokenizer, vectors, rows, corpora, settings=DECODING
    )
    zero = [g for g in samples if not g.strengths]
    base_nll = statistics.fmean(g.nll for g in zero if g.nll is not None)
    table_rows, cells = [], {}
    for c in GRID:
        for a in GRID:
            group = [
                g
                for g in samples
                if g.strengths.get("culture", 0.0) == c and g.strengths.get("age", 0.0) == a
            ]
            nll = statistics.fmean(g.nll for g in group if g.nll is not None)
            culture = [g.effects["culture"] for g in group]
            age = [g.effects["age"] for g in group]
            ratio = math.exp(nll - base_nll)
            cells[f"culture{c:+g},age{a:+g}"] = {"culture": culture, "age": age, "ppl_ratio": ratio}
            table_rows.append([f"{c:+g}", f"{a:+g}", ci(culture), ci(age), f"{ratio:.2f}"])
    text = "## E3: culture and age at once\n\n"
    text += table(["culture", "age", "culture effect", "age effect", "ppl ratio"], table_rows)
    text += "\n"
    return {"cells": cells}, text


def e4(users: int, max_turns: int, thresholds: dict) -> tuple[dict, str]:
    llm = SteeredChatModel(
        model="demo", max_tokens=40, repetition_penalty=1.15, max_batch_size=users
    )
    agent = build_preference_agent(
        llm, checkpointer=InMemorySaver(), system_prompt=PLANNER_SYSTEM_PROMPT
    )
    corpora = {name: PoleCorpus.from_dimension(name) for name in DIMENSIONS}
    anchors = {
        name: (embed(list(c.positive)), embed(list(c.negative))) for name, c in corpora.items()
    }
    plans = []
    for seed in range(users):
        rng = random.Random(seed)
        name = DIMENSIONS[seed % len(DIMENSIONS)]
        target = 1 if (seed // len(DIMENSIONS)) % 2 == 0 else -1
        requests = rng.sample(load_dimension(name).eval_prompts, max_turns)
        plans.append(
            {
                "seed": seed,
                "dimension": name,
                "target": target,
                "states_it": seed % 2 == 0,
                "requests": requests,
                "rng": rng,
            }
        )

    def turn(plan: dict, index: int, complaint: str | None) -> dict:
        key = (plan["dimension"], plan["target"])
        text = plan["requests"][index]
        if index == 0 and plan["states_it"]:
            text = f"{plan['rng'].choice(STATEMENTS[key])} {text}"
        if complaint:
            text = f"{complaint} {text}"
        result = agent.invoke(
            {"messages": [("user", text)]},
            {"configurable": {"thread_id": f"user-{plan['seed']}"}},
            context=AgentContext(user_id=f"user-{plan['seed']}"),
        )
        reply = result["messages"][-1].content
        positive, negative = anchors[plan["dimension"]]
        effect = float(relative_similarity(embed([reply]), positive, negative)[0])
        return {
            "user": text,
            "reply": reply,
            "effect": effect,
            "value": float(result["preferences"].get(plan["dimension"], 0.0)),
        }

    logs: list[list[dict]] = [[] for _ in plans]
    complaints: list[str | None] = [None] * len(plans)
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        for index in range(max_turns):
            said = [complaints[p["seed"]] for p in plans]
            records = list(pool.map(turn, plans, [index] * len(plans), said))
            for plan, record in zip(plans, records, strict=True):
                logs[plan["seed"]].append(record)
                # The user is pleased when the reply leans their way more than an unsteered reply does.
                zero, reach = thresholds[plan["dimension"]]
                pleased = plan["target"] * (record["effect"] - zero) > reach
                record["pleased"] = pleased
                key = (plan["dimension"], plan["target"])
                complaints[plan["seed"]] = None if pleased else plan["rng"].choice(COMPLAINTS[key])
    converged, pleased_at, rows = [], [], []
    for plan, log in zip(plans, logs, strict=True):
        learned = next(
            (i + 1 for i, r in enumerate(log) if plan["target"] * r["value"] >= 0.5), None
        )
        pleased = next((i + 1 for i, r in enumerate(log) if r["pleased"]), None)
        converged.append(learned)
        pleased_at.append(pleased)
        rows.append(
            [
                str(plan["seed"]),
                f"{plan['dimension']} {plan['target']:+d}",
                "yes" if plan["states_it"] else "no",
                " ".join(f"{r['value']:+.2f}" for r in log),
                str(learned or f">{max_turns}"),
                str(pleased or f">{max_turns}"),
            ]
        )
    done = [c for c in converged if c is not None]
    text = "## E4: simulated users and the LEARN agent\n\n"
    text += (
        f"{len(done)} of {len(plans)} users converged within {max_turns} turns "
        f"(median {statistics.median(done) if done else 'n/a'} turns among them); "
        f"{sum(1 for c, p in zip(converged, plans, strict=True) if c and p['states_it'])} of "
        f"{sum(p['states_it'] for p in plans)} who stated their preference and "
        f"{sum(1 for c, p in zip(converged, plans, strict=True) if c and not p['states_it'])} of "
        f"{sum(not p['states_it'] for p in plans)} who only complained.\n\n"
    )
    text += table(
        [
            "seed",
            "hidden preference",
            "stated",
            "agent's value after each turn",
            "learned at turn",
            "first pleasing reply",
        ],
        rows,
    )
    text += "\n"
    for plan in plans:
        del plan["rng"]
    return {"users": plans, "logs": logs, "converged": converged, "pleased_at": pleased_at}, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", default="docs/paper_reproduction", help="folder for results and figures"
    )
    parser.add_argument("--prompts", type=int, default=10, help="requests per condition (E1-E3)")
    parser.add_argument("--users", type=int, default=20, help="simulated users (E4)")
    parser.add_argument("--turns", type=int, default=6, help="turns per simulated user (E4)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model("demo")
    vectors = builtin_vectors()
    results: dict[str, Any] = {}
    sections = [
        "# Paper reproduction on the demo model (generated by examples/paper_reproduction.py)\n"
    ]
    timings = {}
    for label, run in (
        ("E1", lambda: e1(model, tokenizer, vectors, args.prompts, out)),
        ("E2", lambda: e2(model, tokenizer, vectors, args.prompts, out)),
        ("E3", lambda: e3(model, tokenizer, vectors, args.prompts, out)),
    ):
        started = time.perf_counter()
        results[label], text = run()
        timings[label] = round(time.perf_counter() - started, 1)
        sections.append(text)
        print(text, flush=True)
    # E4's user judges replies against E1's measured scale: pleased beyond half the way to ±1.
    thresholds = {}
    for name in DIMENSIONS:
        summaries = {s["strength"]: s["effect"] for s in results["E1"][name]["summaries"]}
        reach = (summaries[1.0] - summaries[-1.0]) / 4
        thresholds[name] = (summaries[0.0], max(reach, 0.0))
    started = time.perf_counter()
    results["E4"], text = e4(args.users, args.turns, thresholds)
    timings["E4"] = round(time.perf_counter() - started, 1)
    sections.append(text)
    print(text, flush=True)
    results["seconds"] = timings
    sections.append(
        "Seconds per experiment: " + ", ".join(f"{k} {v}" for k, v in timings.items()) + ".\n"
    )
    write_json(results, out / "results.json")
    (out / "results.md").write_text("\n".join(sections), "utf-8")
    print(f"wrote {out / 'results.md'} and {out / 'results.json'}; seconds: {timings}")


if __name__ == "__main__":
    main()
