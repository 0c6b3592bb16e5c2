"""The shipped vectors visibly steer the embedded model: `langchain-steer eval poles` on held-out requests.

Eight of the 40 held-out everyday requests, every dimension at -1 and +1, 48-token greedy replies, the pole
judge deciding: a few minutes on a laptop CPU. The full measurement (all 40 requests, with the reference
model) is in docs/eval.md. On these 8, with the first (1.4) ranges, it measured at -1 / +1 own-pole
shares of 88/100 % (cost), 50/38 % (ambiance), 88/75 % (age), 88/88 % (time) and 50/62 % (culture),
against 0 to 20 % unsteered;
the thresholds leave about one reply of slack (8 replies move a share in steps of 12.5 points).
"""

import json

import pytest

from langchain_steer.cli import main
from langchain_steer.dimensions import DIMENSIONS
from langchain_steer.eval.pole_eval import PoleEvaluation

PROMPTS = 8


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, demo):
    out = tmp_path_factory.mktemp("poles")
    code = main(["eval", "poles", "--prompts", str(PROMPTS), "--out", str(out)])
    assert code == 0
    assert (out / "poles.md").read_text().startswith("# Pole shares")
    return PoleEvaluation.from_dict(json.loads((out / "poles.json").read_text()))


def test_the_report_covers_every_dimension_and_strength(evaluation):
    assert evaluation.dimensions == list(DIMENSIONS)
    assert evaluation.strengths == [0.0, -1.0, 1.0]
    assert len(evaluation.replies) == PROMPTS * (1 + 2 * len(DIMENSIONS))
    assert all(set(r.labels) == set(DIMENSIONS) for r in evaluation.replies)
    # Every pole has a prompted baseline to measure fluency against.
    assert len(evaluation.baselines) == 2 * len(DIMENSIONS)


@pytest.mark.parametrize("name", DIMENSIONS)
def test_each_dimension_moves_the_replies_to_its_poles(evaluation, name):
    plain = evaluation.shares(name, 0.0)
    low = evaluation.shares(name, -1.0)
    high = evaluation.shares(name, 1.0)
    for side, shares in (("negative", low), ("positive", high)):
        assert shares[side] >= 0.25, (name, side, shares)
        assert shares[side] >= plain[side] + 0.25, (name, side, shares, plain)
    assert high["positive"] - low["positive"] >= 0.3, (name, low, high)


@pytest.mark.parametrize("name", DIMENSIONS)
def test_steered_replies_stay_fluent(evaluation, name):
    for strength in (-1.0, 1.0):
        assert evaluation.degenerate(name, strength) <= 1 / PROMPTS, (name, strength)
        # Measured 1.01 to 1.79 (first, 1.4 ranges) against the prompted-pole baseline on these 8 requests.
        assert evaluation.ppl_ratio(name, strength) <= 2.0, (name, strength)


def test_each_dimension_mostly_moves_itself(evaluation):
    names, matrix = evaluation.cross_effects()
    for i, row in enumerate(matrix):
        own = row[i]
        # 0.88 (ambiance) to 1.88 (cost) with the 1.4 ranges, of at most 2.
        assert own >= 0.75, (names[i], own)
        for j, value in enumerate(row):
            if j != i:
                # At most 0.43 of the own effect with the 1.4 ranges (time on age: -0.75 against +1.75).
                assert abs(value) <= 0.6 * own, (names[i], names[j], value, own)


def test_the_shipped_vectors_carry_the_demo_models_passport():
    from langchain_steer import builtin_vectors, load_model
    from langchain_steer.passport import Passport

    model, tokenizer = load_model("demo")
    live = Passport.of(model, tokenizer)
    for name, vector in builtin_vectors().items():
        assert vector.passport is not None, name
        assert vector.passport.mismatches(live) == [], name
        assert sorted(vector.passport.residual_norms) == vector.layers, name
        vector.validate_for(model, tokenizer=tokenizer)
