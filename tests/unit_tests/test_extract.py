import pytest
import torch
from helpers import hook_count

from langchain_steer import Example, SteeringVector, extract_vector, steer
from langchain_steer.calibrate import calibrate_range, response_nll
from langchain_steer.extract import (
    collect_activations,
    examples_hash,
    probe_accuracies,
    render_example,
)

PROMPTS = [f"plan {i}" for i in range(12)]
NEGATIVE = [Example(p, f"cheap and simple option number {i}") for i, p in enumerate(PROMPTS)]
POSITIVE = [Example(p, f"LUXURY GRAND VELVET SUITE #{i}!!") for i, p in enumerate(PROMPTS)]


def test_render_marks_reply_tokens(tokenizer):
    ids, start = render_example(tokenizer, Example("hi", "yo"))
    assert tokenizer.decode(ids[start:]) == "yo"
    assert tokenizer.decode(ids[:start]).endswith("<assistant>")


def test_render_without_chat_template():
    from tiny_models import tiny_tokenizer

    plain = tiny_tokenizer(chat_template=None)
    ids, start = render_example(plain, Example("hi", "yo"))
    assert "Assistant:" in plain.decode(ids[:start])


def test_activations_are_batch_invariant_and_reply_only(llama, tokenizer):
    one = collect_activations(llama, tokenizer, NEGATIVE[:3], batch_size=1, progress=False)
    many = collect_activations(llama, tokenizer, NEGATIVE[:3], batch_size=3, progress=False)
    assert one.shape == (3, 3, 32)
    torch.testing.assert_close(one, many, rtol=1e-4, atol=1e-5)
    assert hook_count(llama) == 0


@pytest.mark.parametrize("method", ["mean_diff", "pca", "probe"])
def test_extract_is_unit_norm_oriented_and_deterministic(llama, tokenizer, method):
    kwargs = dict(
        name="cost",
        poles=("budget", "luxury"),
        method=method,
        top_k=2,
        progress=False,
        candidate_layers=(0.0, 1.0),
    )
    vector = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, **kwargs)
    again = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, **kwargs)
    assert isinstance(vector, SteeringVector) and len(vector.layers) == 2
    assert vector.method == method and vector.poles == ("budget", "luxury")
    assert vector.examples_hash == examples_hash(NEGATIVE, POSITIVE)
    neg = collect_activations(llama, tokenizer, NEGATIVE, progress=False)
    pos = collect_activations(llama, tokenizer, POSITIVE, progress=False)
    for layer, direction in vector.directions.items():
        assert torch.isclose(direction.norm(), torch.tensor(1.0), atol=1e-5)
        assert torch.dot(pos[layer].mean(0) - neg[layer].mean(0), direction) > 0
        assert torch.equal(direction, again.directions[layer])


def test_explicit_layers_and_probe_accuracy(llama, tokenizer):
    vector = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, layers=[-1], progress=False)
    assert vector.layers == [2]
    neg = collect_activations(llama, tokenizer, NEGATIVE, progress=False)
    pos = collect_activations(llama, tokenizer, POSITIVE, progress=False)
    accuracies = probe_accuracies(neg, pos)
    assert len(accuracies) == 3 and max(accuracies) >= 0.9  # the poles differ in every character


def test_too_few_or_unbalanced_examples(llama, tokenizer):
    with pytest.raises(ValueError, match="Too few examples"):
        extract_vector(llama, tokenizer, NEGATIVE[:3], POSITIVE[:3], progress=False)
    with pytest.raises(ValueError, match="Unbalanced"):
        extract_vector(llama, tokenizer, NEGATIVE[:8], POSITIVE * 2, progress=False)
    with pytest.raises(ValueError, match="Unknown method"):
        extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, method="magic", progress=False)


def test_calibration_finds_the_perplexity_limit(llama, tokenizer):
    vector = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, top_k=2, progress=False)
    held_out = NEGATIVE[:4] + POSITIVE[:4]
    alpha, details = calibrate_range(
        llama,
        tokenizer,
        vector,
        held_out,
        max_ratio=1.5,
        limit=64.0,
        refine_steps=3,
        progress=False,
    )
    assert 0 < alpha <= 64
    base = response_nll(llama, tokenizer, held_out)
    for sign in (1.0, -1.0):
        calibrated = type(vector)(vector.directions, functional_range=alpha)
        with steer(llama, {"v": calibrated}, {"v": sign}):
            assert (
                torch.exp(torch.tensor(response_nll(llama, tokenizer, held_out) - base))
                <= 1.5 + 1e-6
            )
    assert details["sweep"] and details["max_ratio"] == 1.5
