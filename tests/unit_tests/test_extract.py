import pytest
import torch
from helpers import hook_count

from langchain_steer import Example, SteeringVector, extract_vector
from langchain_steer.extract import (
    collect_activations,
    examples_hash,
    layer_band,
    probe_accuracies,
)
from langchain_steer.prompts import render_example

PROMPTS = [f"plan {i}" for i in range(12)]
NEGATIVE = [Example(p, f"cheap and simple option number {i}") for i, p in enumerate(PROMPTS)]
POSITIVE = [Example(p, f"LUXURY GRAND VELVET SUITE #{i}!!") for i, p in enumerate(PROMPTS)]


def test_render_marks_reply_tokens(tokenizer):
    ids, start = render_example(tokenizer, Example("hi", "yo"))
    assert tokenizer.decode(ids[start:]) == "yo"
    assert tokenizer.decode(ids[:start]).endswith("<assistant>")


def test_render_with_a_system_prompt(tokenizer):
    ids, start = render_example(tokenizer, Example("hi", "yo"), system="be brief")
    assert tokenizer.decode(ids[:start]).startswith("<system>be brief")
    assert tokenizer.decode(ids[start:]) == "yo"


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
        band=(0.0, 1.0),
        layer_weights="unit",
    )
    vector = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, **kwargs)
    again = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, **kwargs)
    assert isinstance(vector, SteeringVector) and len(vector.layers) == 2 and vector.symmetric
    assert vector.method == method and vector.poles == ("budget", "luxury")
    assert vector.examples_hash == examples_hash(NEGATIVE, POSITIVE)
    neg = collect_activations(llama, tokenizer, NEGATIVE, progress=False)
    pos = collect_activations(llama, tokenizer, POSITIVE, progress=False)
    for layer, direction in vector.directions.items():
        assert torch.isclose(direction.norm(), torch.tensor(1.0), atol=1e-5)
        assert torch.dot(pos[layer].mean(0) - neg[layer].mean(0), direction) > 0
        assert torch.equal(direction, again.directions[layer])


def test_explicit_layers_and_probe_accuracy(llama, tokenizer):
    vector = extract_vector(
        llama, tokenizer, NEGATIVE, POSITIVE, method="mean_diff", layers=[-1], progress=False
    )
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


def test_pole_mean_is_two_sided_against_the_anchor(llama, tokenizer):
    anchor = [Example(p, f"a plain answer {i}") for i, p in enumerate(PROMPTS)]
    vector = extract_vector(
        llama, tokenizer, NEGATIVE, POSITIVE, anchor=anchor, band=(0.0, 1.0), progress=False
    )
    assert vector.method == "pole_mean" and not vector.symmetric and vector.layers == [0, 1, 2]
    centre = collect_activations(llama, tokenizer, anchor, progress=False).mean(1)
    neg = collect_activations(llama, tokenizer, NEGATIVE, progress=False)
    pos = collect_activations(llama, tokenizer, POSITIVE, progress=False)
    weights = {layer: float(vector.directions[layer].norm()) for layer in vector.layers}
    assert sorted(weights.values())[1] == pytest.approx(1.0)  # the median layer has norm 1
    for layer in vector.layers:
        to_pos = pos[layer].mean(0) - centre[layer]
        to_neg = neg[layer].mean(0) - centre[layer]
        torch.testing.assert_close(
            vector.directions[layer], to_pos / to_pos.norm() * weights[layer], rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(
            vector.negative_directions[layer],
            to_neg / to_neg.norm() * weights[layer],
            rtol=1e-4,
            atol=1e-5,
        )
    # A precomputed anchor tensor gives the same vector.
    again = extract_vector(
        llama, tokenizer, NEGATIVE, POSITIVE, anchor=centre, band=(0.0, 1.0), progress=False
    )
    for layer in vector.layers:
        torch.testing.assert_close(again.directions[layer], vector.directions[layer])
    assert vector.extra["residual_norm"].keys() == {"0", "1", "2"}


def test_residual_weights_follow_the_layer_norms(llama, tokenizer):
    kwargs = dict(method="mean_diff", band=(0.0, 1.0), progress=False)
    unit = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, layer_weights="unit", **kwargs)
    weighted = extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, **kwargs)
    norms = {int(k): v for k, v in weighted.extra["residual_norm"].items()}
    median = sorted(norms.values())[1]
    for layer in weighted.layers:
        w, u = weighted.directions[layer], unit.directions[layer]
        assert float(torch.nn.functional.cosine_similarity(w, u, dim=0)) == pytest.approx(1.0)
        # The recorded norms are rounded to three decimals.
        assert float(w.norm()) == pytest.approx(norms[layer] / median, rel=1e-2)


def test_layer_band():
    assert layer_band(30) == list(range(16, 25))
    assert layer_band(18) == list(range(10, 15))
    assert layer_band(3, (0.0, 1.0)) == [0, 1, 2]
    with pytest.raises(ValueError, match="band"):
        layer_band(10, (0.8, 0.2))


def test_pole_mean_needs_an_anchor(llama, tokenizer):
    with pytest.raises(ValueError, match="anchor"):
        extract_vector(llama, tokenizer, NEGATIVE, POSITIVE, progress=False)
    with pytest.raises(ValueError, match="shape"):
        extract_vector(
            llama, tokenizer, NEGATIVE, POSITIVE, anchor=torch.zeros(2, 32), progress=False
        )
