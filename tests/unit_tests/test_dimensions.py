import json
import re
from importlib import resources

import pytest

from langchain_steer.dimensions import (
    DIMENSIONS,
    Example,
    load_dimension,
    read_examples,
    writing_system_examples,
)

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


def _write(tmp_path, content, name="mine.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_read_examples_parses_a_custom_file_with_defaults(tmp_path):
    pairs = [{"prompt": f"p{i}", "negative": f"lo {i}", "positive": f"hi {i}"} for i in range(4)]
    dim = read_examples(_write(tmp_path, {"negative": "calm", "examples": pairs}))
    assert dim.name == "mine" and dim.poles == ("calm", "positive")
    assert [p["split"] for p in dim.pairs] == ["train"] * 4  # the default split
    negative, positive = dim.examples("train")
    assert negative[1] == Example("p1", "lo 1") and positive[3] == Example("p3", "hi 3")
    assert dim.pole_prompts == {} and dim.pole_words == {} and dim.eval_prompts == []
    # No test split: every pair is held out, and the sweep uses their requests, evenly spaced.
    assert dim.held_out() == dim.examples("all") and dim.sweep_prompts(2) == ["p0", "p2"]
    assert read_examples({"examples": pairs}, name="other").name == "other"


def test_read_examples_reads_the_builtin_format():
    dim = load_dimension("cost")
    assert dim == read_examples(
        resources.files("langchain_steer.dimensions") / "data" / "cost.json"
    )
    assert dim.held_out() == dim.examples("test")
    assert len(dim.sweep_prompts(8)) == 8 and set(dim.sweep_prompts(8)) <= set(dim.eval_prompts)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"mine\.json is not valid JSON"),
        ({"examples": []}, r"mine\.json is not an examples file: it needs a non-empty 'examples'"),
        ({"pairs": []}, r"mine\.json is not an examples file"),
        (
            {
                "examples": [
                    {"prompt": "a", "negative": "b", "positive": "c"},
                    {"prompt": "a", "negative": "b"},
                ]
            },
            r"mine\.json: examples\[1\]: 'positive' is missing",
        ),
        (
            {"examples": [{"prompt": "a", "negative": 3, "positive": "c"}]},
            r"examples\[0\]: 'negative' is int, not text",
        ),
        ({"examples": ["text"]}, r"examples\[0\] is 'text', not a"),
        (
            {"examples": [{"prompt": "a", "negative": "b", "positive": "c", "split": "dev"}]},
            r"examples\[0\]: 'split' is 'dev'; use 'train'",
        ),
        (
            {
                "examples": [{"prompt": "a", "negative": "b", "positive": "c"}],
                "pole_prompts": {"negative": "x"},
            },
            r"mine\.json: 'pole_prompts' must be \{'negative': \.\.\., 'positive': \.\.\.\}",
        ),
        (
            {
                "examples": [{"prompt": "a", "negative": "b", "positive": "c"}],
                "eval_prompts": "one",
            },
            r"'eval_prompts' must be a list of strings",
        ),
    ],
)
def test_read_examples_errors_name_the_file_and_the_entry(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_examples(_write(tmp_path, content))


def test_read_examples_missing_file_and_unknown_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="No examples file at .*nothing.json"):
        read_examples(tmp_path / "nothing.json")
    pairs = [{"prompt": "a", "negative": "b", "positive": "c"}]
    with pytest.warns(UserWarning, match=r"unknown keys \['pole_word'\] are ignored"):
        read_examples(_write(tmp_path, {"examples": pairs, "pole_word": {}}))


def test_writing_system_examples_pair_english_with_another_script():
    english, other = writing_system_examples()
    assert len(english) == len(other) == 16
    assert all(e.prompt == o.prompt for e, o in zip(english, other, strict=True))
    assert all(
        e.response.isascii() and not o.response.isascii()
        for e, o in zip(english, other, strict=True)
    )
