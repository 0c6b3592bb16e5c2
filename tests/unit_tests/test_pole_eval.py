"""evaluate_poles and its report on a tiny random model: mechanics, identities and round trips."""

import json
import math

import pytest
from helpers import hook_count, random_vector

from langchain_steer import SteeringVector
from langchain_steer.eval.judge import PoleJudge
from langchain_steer.eval.pole_eval import PoleEvaluation, Reply, evaluate_poles, generate_replies
from langchain_steer.eval.report import poles_markdown, write_pole_report

JUDGES = {
    "cost": PoleJudge("cost", ("budget", "luxury"), {"negative": ("a",), "positive": ("b",)}),
    "age": PoleJudge("age", ("kids", "adults"), {"negative": ("c",), "positive": ("d",)}),
}
INSTRUCTIONS = {
    "cost": {"negative": "Cheap.", "positive": "Lavish."},
    "age": {"negative": "Kids.", "positive": "Adults."},
}


@pytest.fixture(scope="module")
def evaluation(llama, tokenizer):
    vectors = {
        "cost": random_vector(llama, name="cost", functional_range=0.3),
        "age": random_vector(llama, name="age", seed=4, functional_range=0.3),
    }
    return evaluate_poles(
        llama,
        tokenizer,
        vectors,
        prompts=["Hi", "Gift?"],
        judges=JUDGES,
        instructions=INSTRUCTIONS,
        system="be brief",
        max_new_tokens=5,
        progress=False,
    )


def test_every_reply_is_judged_by_every_dimension(evaluation, llama):
    assert evaluation.strengths == [0.0, -1.0, 1.0]
    assert len(evaluation.at("cost", 0)) == 2 and len(evaluation.at("cost", 1.0)) == 2
    assert len(evaluation.replies) == 2 + 2 * 2 * 2
    assert all(set(r.labels) == {"cost", "age"} for r in evaluation.replies)
    for name in ("cost", "age"):
        for s in evaluation.strengths:
            assert sum(evaluation.shares(name, s).values()) == pytest.approx(1.0)
    assert set(evaluation.baselines) == {(d, s) for d in JUDGES for s in ("negative", "positive")}
    assert hook_count(llama) == 0


def test_unsteered_rows_equal_plain_generation(evaluation, llama, tokenizer):
    plain = generate_replies(
        llama, tokenizer, {}, [("Hi", {}), ("Gift?", {})], system="be brief", max_new_tokens=5,
        progress=False,
    )  # fmt: skip
    assert sorted(r.text for r in evaluation.at("cost", 0)) == sorted(plain)


def test_cross_effects_matrix_and_round_trip(evaluation, tmp_path):
    judged, matrix = evaluation.cross_effects(1.0)
    assert judged == ["cost", "age"] and len(matrix) == 2 and len(matrix[0]) == 2
    assert all(-2 <= v <= 2 for row in matrix for v in row)
    data = json.loads(json.dumps(evaluation.to_dict()))
    again = PoleEvaluation.from_dict(data)
    assert again.cross_effects(1.0) == evaluation.cross_effects(1.0)
    assert again.shares("age", -1.0) == evaluation.shares("age", -1.0)
    written = write_pole_report(evaluation, tmp_path)
    text = written["markdown"].read_text()
    assert "## Cross-effects" in text and "`cost`" in text and "Prompted-pole baselines" in text
    assert json.loads(written["json"].read_text())["schema"] == "langchain-steer/pole-eval@1"


def test_ratios_use_the_baseline_of_the_pole_steered_towards(evaluation):
    ratio = evaluation.ppl_ratio("cost", 1.0)
    expected = evaluation.ppl("cost", 1.0) / evaluation.baselines[("cost", "positive")].ppl
    assert ratio == pytest.approx(expected)
    assert math.isnan(evaluation.ppl_ratio("cost", 1.0, reference=True))


def test_two_sided_vectors_and_bad_settings(llama, tokenizer):
    base = random_vector(llama, functional_range=0.3)
    two_sided = SteeringVector(
        base.directions, name="cost", negative_directions=random_vector(llama, seed=7).directions
    )
    result = evaluate_poles(
        llama, tokenizer, {"cost": two_sided}, prompts=["Hi"], judges=JUDGES, max_new_tokens=3,
        strengths=[-0.5], progress=False,
    )  # fmt: skip
    assert result.strengths == [0.0, -0.5] and not result.baselines
    assert math.isnan(result.ppl_ratio("cost", -0.5))
    with pytest.raises(ValueError, match="at least one prompt"):
        evaluate_poles(llama, tokenizer, {"cost": base}, prompts=[], judges=JUDGES)
    with pytest.raises(ValueError, match="vector and a judge"):
        evaluate_poles(llama, tokenizer, {"spice": base}, prompts=["Hi"], judges=JUDGES)
    with pytest.raises(ValueError, match="repetition_penalty"):
        generate_replies(llama, tokenizer, {}, [("Hi", {})], repetition_penalty=5.0)


def test_markdown_flags_cross_effects_above_a_third():
    def reply(strengths, cost, age):
        return Reply("p", "p", strengths, "t", {"cost": cost, "age": age}, [], 1.0)

    replies = [reply({}, "neither", "neither")]
    replies += [
        reply({"cost": 1.0}, "positive", "positive"),
        reply({"cost": -1.0}, "negative", "neither"),
    ]
    replies += [
        reply({"age": 1.0}, "neither", "positive"),
        reply({"age": -1.0}, "neither", "negative"),
    ]
    evaluation = PoleEvaluation(["cost", "age"], [0.0, -1.0, 1.0], replies, {}, {"prompts": ["p"]})
    judged, matrix = evaluation.cross_effects(1.0)
    assert matrix == [[2.0, 1.0], [0.0, 2.0]]
    assert "+1.00!" in poles_markdown(evaluation)


def test_embedding_agreement_counts_only_replies_read_as_a_pole():
    def reply(label, score):
        return Reply(
            "p", "p", {"cost": 1.0}, "t", {"cost": label}, [], 1.0, embedding={"cost": score}
        )

    replies = [reply("positive", 0.2), reply("positive", -0.1), reply("negative", -0.3)]
    replies += [reply("neither", -0.5), Reply("p", "p", {}, "t", {"cost": "neither"}, [], 1.0)]
    evaluation = PoleEvaluation(["cost"], [0.0, 1.0], replies, {}, {"prompts": ["p"]})
    assert evaluation.embedding_agreement("cost", 1.0) == pytest.approx(2 / 3)
    assert math.isnan(evaluation.embedding_agreement("cost", 0.0))  # nothing read as a pole
    assert "embedding agrees" in poles_markdown(evaluation)
    # The JSON round trip keeps the scores.
    assert PoleEvaluation.from_dict(evaluation.to_dict()).replies[0].embedding == {"cost": 0.2}


def test_rejudged_relabels_replies_and_baselines_and_keeps_the_rest(evaluation, tmp_path):
    class Luxury(PoleJudge):  # a judge that reads every reply as the positive pole
        def label(self, text):
            return "positive"

    again = evaluation.rejudged(
        {"cost": Luxury("cost", ("budget", "luxury"), JUDGES["cost"].lexicon)}
    )
    assert all(r.labels["cost"] == "positive" for r in again.replies)
    assert all(r.labels["cost"] == "positive" for b in again.baselines.values() for r in b.replies)
    assert [r.labels["age"] for r in again.replies] == [r.labels["age"] for r in evaluation.replies]
    assert [r.nll for r in again.replies] == [r.nll for r in evaluation.replies]
    assert again.settings["rejudged"] == ["cost"] and "rejudged" not in evaluation.settings
    assert again.shares("cost", -1.0)["positive"] == 1.0
    # The CLI re-reads a saved report with the built-in judges, without loading a model.
    from langchain_steer.cli import main

    saved = write_pole_report(evaluation, tmp_path / "saved")["json"]
    assert main(["eval", "poles", "--rejudge", str(saved), "--out", str(tmp_path / "new")]) == 0
    data = json.loads((tmp_path / "new" / "poles.json").read_text())
    assert data["settings"]["rejudged"] == ["age", "cost"]
    with pytest.raises(SystemExit, match="cannot read the report"):
        main(["eval", "poles", "--rejudge", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
