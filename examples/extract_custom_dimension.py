"""Extract and calibrate your own preference dimension, then steer with it.

Run: python examples/extract_custom_dimension.py
"""

import dataclasses

from langchain_steer import Example, calibrate_range, extract_vector, load_model, steer
from langchain_steer.generate import generate_batch

model, tokenizer = load_model("demo")

requests = [
    "Plan a weekend for me.",
    "What should I do on Saturday?",
    "Any ideas for a day off?",
    "How should I spend my vacation?",
    "Suggest an outing for tomorrow.",
    "What can I do this evening?",
    "Recommend a trip for next month.",
    "What's a good way to relax this weekend?",
    "Plan my Sunday.",
    "Ideas for a free afternoon?",
    "What should we do on our holiday?",
    "Suggest something to do with friends.",
]
calm = [
    Example(r, "Take it slow: a quiet walk in the park, a good book and a cup of tea.")
    for r in requests
]
active = [
    Example(r, "Go big: a sunrise hike, an afternoon kayak trip, then rock climbing!")
    for r in requests
]

vector = extract_vector(
    model, tokenizer, calm[:10], active[:10], name="energy", poles=("calm", "active")
)
alpha, _ = calibrate_range(model, tokenizer, vector, calm[10:] + active[10:])
vector = dataclasses.replace(vector, functional_range=alpha)
vector.save("energy.safetensors")
print(vector)

chat = [{"role": "user", "content": "What should I do this weekend?"}]
for reply, strength in zip(
    generate_batch(
        model, tokenizer, [chat, chat], {"energy": vector}, [{"energy": -1}, {"energy": 1}]
    ),
    (-1, 1),
    strict=True,
):
    print(f"energy={strength:+d}: {reply}\n")
with steer(model, {"energy": vector}, {"energy": 0}):
    pass  # strength 0 registers no hook at all
