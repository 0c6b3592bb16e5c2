"""The engine on the real embedded model: loading, built-in vectors, and the direction of `cost`."""

import subprocess
import sys

import pytest
import torch
from pole_words import mean_word_logprob

from langchain_steer import DIMENSIONS, SteeringVector, load_dimension, load_model, steer
from langchain_steer.dimensions import PLANNER_SYSTEM_PROMPT
from langchain_steer.layers import hidden_size


def test_demo_model_is_cached_per_process(demo):
    model, tokenizer = demo
    assert load_model("demo") is demo
    assert hidden_size(model) == 576 and model.config.num_hidden_layers == 30
    assert tokenizer.chat_template


def test_demo_loads_in_a_new_process_from_the_disk_cache(demo):
    # The first load converted the GGUF; a new process must find the converted copy.
    code = (
        "import time, langchain_steer, transformers.models.llama.modeling_llama\n"
        "t = time.perf_counter(); langchain_steer.load_model('demo')\n"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = float(out.stdout.strip().splitlines()[-1])
    # Generous bound: the goal is <=3 s; this catches a re-conversion (20-40 s), not noise.
    assert seconds < 15, seconds


def test_builtin_vectors_fit_the_demo_model(demo, demo_vectors):
    model, _ = demo
    assert set(demo_vectors) == set(DIMENSIONS)
    for name, vector in demo_vectors.items():
        assert isinstance(vector, SteeringVector)
        vector.validate_for(model)
        assert vector.name == name and vector.poles == load_dimension(name).poles
        # Two-sided: each pole has its own direction and its own calibrated range.
        assert not vector.symmetric and vector.method == "pole_mean"
        assert vector.functional_range > 0 and vector.negative_side[1] > 0
        assert set(vector.directions) == set(vector.negative_directions or {})
        for direction in [
            *vector.directions.values(),
            *(vector.negative_directions or {}).values(),
        ]:
            assert torch.isfinite(direction).all() and direction.norm() > 0
        details = vector.extra["calibration"]
        assert set(details["checks"]) == {"negative", "positive"}
        assert set(details["stopped_by"]) == {"negative", "positive"}
        assert details["system_prompt"] == PLANNER_SYSTEM_PROMPT


def test_zero_strength_is_the_bare_model(demo, demo_vectors):
    model, tokenizer = demo
    ids = tokenizer("Where should I eat tonight?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = model(ids).logits
        with steer(model, demo_vectors, {name: 0.0 for name in demo_vectors}):
            assert torch.equal(model(ids).logits, plain)


def test_cost_raises_luxury_words_monotonically(demo, demo_vectors):
    model, tokenizer = demo
    dim = load_dimension("cost")
    prompts = [p["prompt"] for p in dim.pairs if p["task"] == "restaurant" and p["split"] == "test"]
    luxury = [
        mean_word_logprob(
            model, tokenizer, demo_vectors, {"cost": s}, prompts, dim.pole_words["positive"]
        )
        for s in (-1.0, 0.0, 1.0)
    ]
    budget = [
        mean_word_logprob(
            model, tokenizer, demo_vectors, {"cost": s}, prompts, dim.pole_words["negative"]
        )
        for s in (-1.0, 0.0, 1.0)
    ]
    assert luxury[0] < luxury[1] < luxury[2], luxury
    assert budget[0] > budget[1] > budget[2], budget


@pytest.mark.parametrize("name", DIMENSIONS)
def test_each_dimension_moves_its_pole_words(demo, demo_vectors, name):
    model, tokenizer = demo
    dim = load_dimension(name)
    prompts = dim.eval_prompts[:8]
    words = dim.pole_words["positive"]
    low = mean_word_logprob(model, tokenizer, demo_vectors, {name: -1.0}, prompts, words)
    high = mean_word_logprob(model, tokenizer, demo_vectors, {name: 1.0}, prompts, words)
    assert high > low, (name, low, high)
