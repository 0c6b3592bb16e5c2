"""Make your own preference dimension: write examples, extract, calibrate, check, and steer with it.

Run: python examples/extract_custom_dimension.py     (about 6 minutes on 2 CPU cores, mostly calibration)
"""

from langchain_steer import Example, load_model
from langchain_steer.dimensions import PLANNER_SYSTEM_PROMPT, everyday_requests
from langchain_steer.eval.judge import PoleJudge
from langchain_steer.generate import generate_batch
from langchain_steer.recipe import DimensionSpec, build_vectors

model, tokenizer = load_model("demo")

# 1. Contrastive examples: the same requests answered at each pole.
requests = [
    "Plan a weekend for me.",
    "What should I do on Saturday?",
    "Any ideas for a day off?",
    "How should I spend my vacation?",
    "Suggest an outing for tomorrow.",
    "Recommend a trip for next month.",
    "What's a good way to spend a free day?",
    "Plan my Sunday.",
    "Ideas for a free afternoon?",
    "What should we do on our holiday?",
    "Suggest something to do with friends.",
    "What's a fun plan for a long weekend?",
]
calm = [
    "Take it slow: a quiet walk in the park, a good book and a cup of tea on the porch.",
    "Keep it gentle with a slow breakfast, a stroll through a garden and a nap in a hammock.",
    "Spend it resting: a long bath, a calm yoga class and an easy picnic in the shade.",
    "Choose a quiet cabin by a lake, with reading, slow walks and relaxed evenings.",
    "Visit a peaceful botanical garden, then unwind with tea and a quiet museum.",
    "Book a calm spa town where you can soak, read and stroll without any rush.",
    "Potter around a quiet bookshop, then relax with a slow lunch and a gentle walk.",
    "Sleep in, read the paper, and take a leisurely walk by the river.",
    "Sit in a quiet café with a book, then take an unhurried stroll in the park.",
    "Pick a sleepy seaside village for slow mornings, naps and gentle beach walks.",
    "Host a relaxed board-game afternoon with tea and a quiet, cozy chat.",
    "Rent a quiet cottage and spend the days reading, resting and strolling slowly.",
]
active = [
    "Go big: a sunrise hike, an afternoon kayak trip, then rock climbing before dinner!",
    "Pack it with action: a mountain-bike trail, a swim and a game of pickup basketball.",
    "Make it active: a trail run, a climbing gym session and a long bike ride.",
    "Choose an adventure trip with white-water rafting, ziplining and summit hikes.",
    "Try a rock-climbing class, then race go-karts and finish with a fast hike.",
    "Book a surf camp with paddling drills, big waves and beach volleyball.",
    "Do a sprint triathlon, then a dance class and a night of trampolines.",
    "Run a 10k in the morning, then cycle to the lake for a hard swim.",
    "Go bouldering, then take a mountain-bike loop and an intense spin class.",
    "Head to the mountains for canyoning, kayaking and a tough ridge hike.",
    "Organise a paintball match, a soccer game and a ropes-course challenge.",
    "Plan a hut-to-hut trek with long climbs, scrambles and cold-river swims.",
]
spec = DimensionSpec(
    name="energy",
    poles=("calm", "active"),
    negative=[Example(r, t) for r, t in zip(requests, calm, strict=True)],
    positive=[Example(r, t) for r, t in zip(requests, active, strict=True)],
    # 2. How to read a reply: the words that mark each pole (or PoleJudge.from_examples(calm, active)).
    judge=PoleJudge(
        "energy",
        ("calm", "active"),
        {
            "negative": (
                "quiet",
                "slow",
                "relax",
                "relaxed",
                "gentle",
                "calm",
                "rest",
                "nap",
                "read",
            ),
            "positive": ("hike", "climbing", "kayak", "run", "bike", "surf", "adventure", "sprint"),
        },
    ),
    # 3. What a user says to ask for each pole: the fluency baseline of calibration.
    instructions={
        "negative": "I want something calm and relaxing.",
        "positive": "I want something active.",
    },
)

# 4. Extract (two-sided, against the built-in replies), disentangle and calibrate on 12 everyday requests.
[vector] = build_vectors(
    model,
    tokenizer,
    [spec],
    system=PLANNER_SYSTEM_PROMPT,
    calibration_prompts=everyday_requests("dev")[:12],
    fractions=(0.01, 0.02, 0.03, 0.04),
).values()
vector.save("energy.safetensors")
print(vector)
print("calibration stopped by:", vector.extra["calibration"]["stopped_by"])

# 5. Use it: one batch, one strength per row, under the same system prompt.
chat = [
    {"role": "system", "content": PLANNER_SYSTEM_PROMPT},
    {"role": "user", "content": "What should I do this weekend?"},
]
replies = generate_batch(
    model, tokenizer, [chat] * 3, {"energy": vector}, [{"energy": -1}, {}, {"energy": 1}],
    max_new_tokens=48, repetition_penalty=1.1,
)  # fmt: skip
for strength, reply in zip((-1, 0, 1), replies, strict=True):
    print(f"energy={strength:+d}: {reply}\n")
