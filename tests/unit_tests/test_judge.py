"""The pole judge: lexicon evidence, clarifying questions, derived lexicons, and agreement with people."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from langchain_steer.dimensions import DIMENSIONS
from langchain_steer.eval.judge import PoleJudge, judge_accuracy, statements

LABELS = Path(__file__).parents[1] / "data" / "judge_labels_dev.json"


def judge(**kwargs):
    lexicon = {"negative": ("cheap", "free", "low cost"), "positive": ("luxury", "five star")}
    return PoleJudge(
        "cost", ("budget", "luxury"), {**lexicon, **kwargs.pop("lexicon", {})}, **kwargs
    )


def test_terms_match_whole_words_and_phrases_across_punctuation():
    j = judge()
    assert j.label("Try a Five-Star spa.") == "positive"
    assert j.label("It's a low-cost, FREE picnic.") == "negative"
    assert j.evidence("Cheapest flights?") == {"negative": [], "positive": []}  # not a whole word
    assert j.label("A free museum and a luxury hotel.") == "neither"  # one term each
    assert j.label("A free, cheap museum and a luxury hotel.") == "negative"


def test_clarifying_questions_are_not_evidence():
    assert (
        statements("What's your budget? Are you after luxury? A cheap diner!") == "A cheap diner!"
    )
    j = judge()
    assert j.label("Do you want something cheap or free?") == "neither"
    # An elliptical suggestion phrased as a question still counts.
    assert j.label("A luxury spa day?") == "positive"


def test_margin_and_shares():
    j = judge(margin=2)
    assert j.label("A cheap picnic.") == "neither"
    assert j.label("A cheap, free picnic.") == "negative"
    shares = judge().shares(["A cheap picnic.", "A luxury suite.", "Hello."])
    assert shares == pytest.approx({"negative": 1 / 3, "neither": 1 / 3, "positive": 1 / 3})
    assert judge().shares([]) == {"negative": 0.0, "neither": 0.0, "positive": 0.0}


def test_bad_lexicons_are_rejected():
    with pytest.raises(ValueError, match="both poles"):
        PoleJudge("x", ("a", "b"), {"negative": ("cheap",), "positive": ()})
    with pytest.raises(ValueError, match="terms at both poles"):
        judge(lexicon={"positive": ("Cheap",)})
    with pytest.raises(ValueError, match="margin"):
        judge(margin=0)


def test_lexicon_derived_from_examples():
    negative = [f"A cheap thrift find number {i} at the flea market." for i in range(6)]
    positive = [f"A designer boutique piece number {i} with champagne." for i in range(6)]
    j = PoleJudge.from_examples(negative, positive, dimension="cost")
    assert {"cheap", "thrift"} <= set(j.lexicon["negative"])
    assert {"designer", "champagne"} <= set(j.lexicon["positive"])
    assert "number" not in j.lexicon["negative"] + j.lexicon["positive"]  # on both sides
    assert j.label("Champagne at a designer store.") == "positive"
    with pytest.raises(ValueError, match="No distinctive words"):
        PoleJudge.from_examples(["same words here"] * 4, ["same words here"] * 4)


def test_embedding_cross_check_agrees_on_clear_replies():
    j = PoleJudge.for_dimension("cost")
    texts = [
        "Pack a cheap picnic and enjoy free concerts in the park.",
        "Book a five-star suite with a private butler and champagne.",
    ]
    assert j.labels(texts) == ["negative", "positive"]
    scores = j.embedding_scores(texts)
    assert scores[0] < 0 < scores[1]
    assert j.embedding_agreement(texts) == 1.0
    assert math.isnan(j.embedding_agreement(["Hello there."]))


def test_judge_accuracy_counts_per_label():
    report = judge_accuracy(
        judge(), ["A cheap one.", "Hi.", "A luxury one."], ["negative", "positive", "positive"]
    )
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["positive"] == 0.5 and report["positive_n"] == 2 and math.isnan(report["neither"])


# Agreement of each built-in judge with blind human labels, measured when the lexicons were last revised
# (docs/eval.md). The dev and test files were used to revise the lexicons; the validation and steered files
# were labelled before that revision and the final file after it; none of those three chose a term.
MEASURED = {
    "dev": {"cost": 0.867, "ambiance": 0.9, "age": 0.944, "time": 0.956, "culture": 0.978},
    "test": {"cost": 0.875, "ambiance": 0.875, "age": 0.958, "time": 0.942, "culture": 0.975},
    "validation": {"cost": 0.9, "ambiance": 0.733, "age": 0.933, "time": 0.95, "culture": 0.933},
    "steered": {"cost": 0.908, "ambiance": 0.842, "age": 0.833, "time": 0.958, "culture": 0.942},
    "final": {"cost": 0.933, "ambiance": 0.8, "age": 0.875, "time": 0.917, "culture": 0.875},
}


def _rows(split, name):
    path = LABELS.with_name(f"judge_labels_{split}.json")
    return [r for r in json.loads(path.read_text("utf-8"))["rows"] if r["dimension"] == name]


@pytest.mark.parametrize("split", list(MEASURED))
@pytest.mark.parametrize("name", DIMENSIONS)
def test_builtin_judges_agree_with_blind_human_labels(name, split):
    rows = _rows(split, name)
    report = judge_accuracy(
        PoleJudge.for_dimension(name), [r["text"] for r in rows], [r["label"] for r in rows]
    )
    assert (
        report["n"]
        == {"dev": 90, "test": 120, "validation": 60, "steered": 120, "final": 120}[split]
    )
    # A lexicon edit that costs more than two labels' worth fails here.
    assert report["accuracy"] >= MEASURED[split][name] - 2 / report["n"] - 1e-9


# The judge against the majority of the validation file's three readers, on the replies prompted toward a
# pole (40 per dimension) and the unsteered ones (20), as measured for docs/eval.md.
MAJORITY = {
    "prompted": {"cost": 0.875, "ambiance": 0.725, "age": 0.925, "time": 0.95, "culture": 0.925},
    "unsteered": {"cost": 0.9, "ambiance": 0.75, "age": 0.95, "time": 0.95, "culture": 0.95},
}


@pytest.mark.parametrize("kind", list(MAJORITY))
@pytest.mark.parametrize("name", DIMENSIONS)
def test_builtin_judges_agree_with_the_majority_of_three_readers(name, kind):
    rows = [
        r
        for r in _rows("validation", name)
        if (r["source"] == "unsteered") == (kind == "unsteered")
    ]
    majority = []
    for row in rows:
        ((label, votes),) = Counter([row["label"], *row["other_labels"]]).most_common(1)
        majority.append(label if votes >= 2 else "neither")
    report = judge_accuracy(PoleJudge.for_dimension(name), [r["text"] for r in rows], majority)
    assert report["n"] == {"prompted": 40, "unsteered": 20}[kind]
    assert report["accuracy"] >= MAJORITY[kind][name] - 2 / report["n"] - 1e-9


def test_a_term_inside_a_longer_term_counts_once():
    judge = PoleJudge(
        dimension="ambiance",
        poles=("touristy", "hipster"),
        lexicon={
            "negative": ["iconic", "landmarks"],
            "positive": ["lesser", "lesser known", "gems"],
        },
    )
    text = "It has iconic landmarks and lesser known spots."
    assert judge.evidence(text) == {
        "negative": ["iconic", "landmarks"],
        "positive": ["lesser known"],
    }
    assert judge.label(text) == "negative"
    assert judge.evidence("A lesser spot.")["positive"] == ["lesser"]


def test_ambiance_judge_on_its_tuning_labels():
    path = LABELS.with_name("judge_labels_ambiance_tuning.json")
    rows = json.loads(path.read_text("utf-8"))["rows"]
    report = judge_accuracy(
        PoleJudge.for_dimension("ambiance"), [r["text"] for r in rows], [r["label"] for r in rows]
    )
    assert report["n"] == 160
    # 81.9 % before these labels revised the lexicon; 83.1 % after.
    assert report["accuracy"] >= 133 / 160 - 2 / 160 - 1e-9
