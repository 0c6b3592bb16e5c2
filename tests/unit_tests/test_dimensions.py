import re

import pytest

from langchain_steer.dimensions import DIMENSIONS, load_dimension

POLES = {
    "cost": ("budget", "luxury"),
    "ambiance": ("touristy", "hipster"),
    "age": ("kids", "adults"),
    "time": ("evening", "morning"),
    "culture": ("asian", "american"),
}
TASKS = {"gift", "travel", "restaurant", "recipe"}


@pytest.mark.parametrize("name", DIMENSIONS)
def test_dimension_data_is_complete(name):
    dim = load_dimension(name)
    assert dim.poles == POLES[name]
    train_neg, train_pos = dim.examples("train")
    test_neg, test_pos = dim.examples("test")
    assert len(train_neg) == len(train_pos) >= 60
    assert len(test_neg) >= 10
    assert {p["task"] for p in dim.pairs} == TASKS
    prompts = [p["prompt"] for p in dim.pairs]
    assert len(set(prompts)) == len(prompts)
    assert not set(prompts) & set(dim.eval_prompts)
    for pair in dim.pairs:
        assert pair["negative"] != pair["positive"]
    for pole in ("negative", "positive"):
        words = dim.pole_words[pole]
        assert words and all(re.fullmatch(r"[a-z0-9' -]+", w) for w in words)
        assert dim.pole_prompts[pole] and len(dim.pole_descriptions[pole]) >= 2
    # A term at both poles could never decide.
    assert not set(dim.pole_words["negative"]) & set(dim.pole_words["positive"])


def test_everyday_requests_are_held_apart():
    from langchain_steer.dimensions import PLANNER_SYSTEM_PROMPT, everyday_requests

    dev, test = everyday_requests("dev"), everyday_requests("test")
    confirm = everyday_requests("confirm")
    final = everyday_requests("final")
    assert len(dev) == 60 and len(test) == 40 and len(confirm) == 40 and len(final) == 40
    assert len(set(dev) | set(test) | set(confirm) | set(final)) == 180  # no request in two splits
    extraction = {p["prompt"] for name in DIMENSIONS for p in load_dimension(name).pairs}
    assert not (set(dev) | set(test) | set(confirm) | set(final)) & extraction
    assert PLANNER_SYSTEM_PROMPT.startswith("You are a lifestyle-planning assistant")
    with pytest.raises(ValueError, match="split"):
        everyday_requests("train")


def test_reference_examples_cover_every_dimension_and_pole():
    from langchain_steer.dimensions import reference_examples

    examples = reference_examples()
    assert len(examples) == len(DIMENSIONS) * 2 * 60
    assert len({e.response for e in examples}) == len(examples)


def test_unknown_dimension():
    with pytest.raises(ValueError, match="cost, ambiance"):
        load_dimension("price")


def test_builtin_vectors_only_for_shipped_names(tmp_path):
    from langchain_steer.dimensions import builtin_vectors

    assert set(builtin_vectors("demo")) == set(DIMENSIONS)
    # A model folder (or any path) is never read as a built-in vector set.
    (tmp_path / "cost.safetensors").write_bytes(b"not a vector")
    for name in (str(tmp_path), "../demo", "gpt2"):
        with pytest.raises(ValueError, match="No built-in vectors ship"):
            builtin_vectors(name)
