"""The evaluation metrics against values worked out by hand."""

import math

import pytest
import torch

from langchain_steer.eval import bootstrap_ci, perplexity, pne, ranks, relative_similarity, spearman


def test_relative_similarity_points_to_the_closer_pole():
    positive = torch.tensor([[1.0, 0.0], [2.0, 0.2]])
    negative = torch.tensor([[0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    effect = relative_similarity(texts, positive, negative)
    assert effect[0] > 0 > effect[1]
    # (cos to [1,0] + cos to [2,0.2]) / 2 - cos to [0,1], for the diagonal text
    diagonal = (math.sqrt(0.5) + (2 + 0.2) / (math.sqrt(2) * math.sqrt(4.04))) / 2 - math.sqrt(0.5)
    assert effect[2].item() == pytest.approx(diagonal, abs=1e-6)
    with pytest.raises(ValueError, match="sizes differ"):
        relative_similarity(texts, torch.zeros(1, 3), negative)
    with pytest.raises(ValueError, match="at least one"):
        relative_similarity(texts, torch.zeros(0, 2), negative)


def test_perplexity_and_pne():
    assert perplexity([math.log(4.0)] * 3) == pytest.approx(4.0)
    assert perplexity(torch.tensor([0.0, 2 * math.log(3.0)])) == pytest.approx(3.0)
    assert pne(0.30, 0.10, 12.0, 10.0) == pytest.approx(0.2 / 1.2)
    with pytest.raises(ValueError, match="at least one token"):
        perplexity([])
    with pytest.raises(ValueError, match="positive"):
        pne(0.1, 0.0, 0.0, 1.0)


def test_ranks_average_ties():
    assert ranks([10, 30, 20, 20]) == [1.0, 4.0, 2.5, 2.5]


def test_spearman_known_values():
    strengths = [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert spearman(strengths, [0.1, 0.2, 0.25, 0.4, 0.9]) == pytest.approx(1.0)
    assert spearman(strengths, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped neighbour pair: rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman(strengths, [1, 2, 4, 3, 5]) == pytest.approx(0.9)
    assert math.isnan(spearman(strengths, [1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="equal lengths"):
        spearman([1, 2], [1])
    with pytest.raises(ValueError, match="two points"):
        spearman([1], [1])


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_data():
    torch.manual_seed(0)
    small = (torch.randn(20) + 3).tolist()
    large = (torch.randn(2000) + 3).tolist()
    low, high = bootstrap_ci(small)
    assert low < sum(small) / len(small) < high
    low_l, high_l = bootstrap_ci(large, resamples=500)
    assert high_l - low_l < (high - low) / 4
    assert bootstrap_ci(small, seed=1) == bootstrap_ci(small, seed=1)
    assert bootstrap_ci([2.5]) == (2.5, 2.5)
    median_low, median_high = bootstrap_ci(small, torch.median, resamples=300)
    assert median_low <= median_high
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(small, confidence=1.5)


def test_degeneration_metrics():
    from langchain_steer.eval.metrics import (
        degeneration,
        distinct_n,
        foreign_script,
        nonword_rate,
        repeated_ngram_rate,
    )

    loop = "A gift for you. " * 6
    assert repeated_ngram_rate(loop) > 0.5 and repeated_ngram_rate("one two three four five") == 0
    assert distinct_n("a b a b") == pytest.approx(2 / 3) and distinct_n("hi") == 1.0
    words = {"a", "cozy", "cafe", "near", "the", "park", "walk", "well", "known"}
    assert nonword_rate("A cozy cafe near the park", words) == 0
    assert nonword_rate("a cozy flurbish near the park", words) == pytest.approx(1 / 6)
    assert nonword_rate("Walks near the well-known Kyoto park", words) == 0  # suffix, hyphen, name
    assert foreign_script("Try sushi 寿司 tonight") and not foreign_script("Crème brûlée — “café”…")
    assert degeneration("A cozy cafe near the park.", words) == []
    assert degeneration("the park", words) == ["short"]
    assert "repetition" in degeneration(loop, {"a", "gift", "for", "you"})
    assert degeneration("flurb glorp snarf the park", words) == ["non-words"]
    with pytest.raises(ValueError):
        repeated_ngram_rate("x", n=0)


def test_english_vocabulary_knows_common_and_recent_words():
    from langchain_steer.eval.fluency import english_vocabulary

    vocabulary = english_vocabulary()
    assert {"brunch", "restaurant", "bespoke", "concierge"} <= vocabulary
    assert "flurbish" not in vocabulary
