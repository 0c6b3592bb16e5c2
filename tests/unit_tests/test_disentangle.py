"""Orthogonalization, counter-steering and the writing-system direction, on a tiny random model."""

import pytest
import torch
from helpers import random_vector

from langchain_steer import SteeringVector
from langchain_steer.disentangle import counter_steer, orthogonalize, writing_system_direction


def two_sided(model, seed=0):
    pos = random_vector(model, seed=seed, layers=(0, 1, 2))
    neg = random_vector(model, seed=seed + 10, layers=(0, 1, 2))
    return SteeringVector(
        {k: v * (k + 1) for k, v in pos.directions.items()},
        name="cost",
        negative_directions=neg.directions,
        functional_range=2.0,
        negative_range=3.0,
    )


def test_orthogonalize_removes_the_span_and_keeps_norms(llama):
    vector = two_sided(llama)
    other = random_vector(llama, seed=5, layers=(0, 1))
    clean = orthogonalize(vector, [other, {2: torch.ones(32)}], label="test")
    negative, _ = clean.negative_side
    for layer in (0, 1):
        for side, original in (
            (clean.directions, vector.directions),
            (negative, vector.negative_side[0]),
        ):
            assert abs(float(side[layer] @ other.directions[layer])) < 1e-5
            assert float(side[layer].norm()) == pytest.approx(
                float(original[layer].norm()), rel=1e-5
            )
    assert abs(float(clean.directions[2].sum())) < 1e-4
    assert clean.extra["disentangle"] == [{"step": "orthogonalize", "against": "test"}]
    assert clean.functional_range == 2.0 and clean.negative_range == 3.0
    symmetric = orthogonalize(random_vector(llama, seed=1), [other])
    assert symmetric.symmetric
    with pytest.raises(ValueError, match="entirely"):
        orthogonalize(other, [other])
    with pytest.raises(ValueError, match="hidden size"):
        orthogonalize(vector, [{0: torch.ones(5)}])


def test_counter_steer_changes_one_side_only(llama):
    vector = two_sided(llama)
    other = two_sided(llama, seed=3)
    mixed = counter_steer(vector, other, side="positive", toward="negative", weight=0.5)
    for layer in (0, 1, 2):
        base = vector.directions[layer]
        push = other.negative_directions[layer]
        expected = base / base.norm() + 0.5 * push / push.norm()
        expected = expected / expected.norm() * base.norm()
        torch.testing.assert_close(mixed.directions[layer], expected)
        torch.testing.assert_close(
            mixed.negative_directions[layer], vector.negative_directions[layer]
        )
    assert mixed.negative_range == 3.0 and mixed.extra["disentangle"][0]["weight"] == 0.5
    unchanged = counter_steer(vector, other, side="positive", toward="positive", weight=0.0)
    for layer in (0, 1, 2):
        torch.testing.assert_close(unchanged.directions[layer], vector.directions[layer])
    with pytest.raises(ValueError, match="weight"):
        counter_steer(vector, other, side="positive", toward="positive", weight=3)


def test_writing_system_direction_has_one_entry_per_layer(llama, tokenizer):
    direction = writing_system_direction(llama, tokenizer)
    assert sorted(direction) == [0, 1, 2]
    assert all(d.shape == (32,) and bool(torch.isfinite(d).all()) for d in direction.values())
    assert sorted(writing_system_direction(llama, tokenizer, layers=[1])) == [1]
