"""Quickstart: steer the embedded demo model along the `cost` dimension.

Run: python examples/quickstart.py
"""

from langchain_steer import builtin_vectors, load_model, steer
from langchain_steer.dimensions import PLANNER_SYSTEM_PROMPT

model, tokenizer = load_model("demo")  # SmolLM2-135M-Instruct, offline
vectors = builtin_vectors("demo")  # cost, ambiance, age, time, culture
messages = [
    # The shipped vectors were extracted and calibrated under this lifestyle-planning system prompt.
    {"role": "system", "content": PLANNER_SYSTEM_PROMPT},
    {"role": "user", "content": "Can you recommend a place to eat in Chicago tonight?"},
]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
)

for strength in (-1.0, 0.0, 1.0):  # budget ... luxury
    with steer(model, vectors, {"cost": strength}):
        output = model.generate(
            **inputs, max_new_tokens=50, do_sample=False, repetition_penalty=1.1
        )
    reply = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"cost={strength:+.0f}: {reply}\n")
