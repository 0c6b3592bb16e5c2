"""Sweeps, diagnostics and reports on a tiny random model (real MiniLM embeddings).

The tiny model writes gibberish, so these tests check the mechanics (shapes, statistics, files, errors);
the behaviour on the demo model is tested in ``tests/integration_tests/test_eval_demo.py``.
"""

import json
import math

import pytest
import torch
from helpers import hook_count, random_vector

from langchain_steer.cli import main
from langchain_steer.eval.diagnostics import cosine_matrix, diagnose, residual_norms
from langchain_steer.eval.report import write_diagnostics, write_report
from langchain_steer.eval.settings import ReplySettings
from langchain_steer.eval.sweep import (
    Generation,
    PoleCorpus,
    SweepResult,
    generate_and_score,
    run_sweep,
    summarise,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUIET4 = ReplySettings(max_new_tokens=4, progress=False)
CORPUS = PoleCorpus(
    ("A cheap picnic in the park.", "Thrift-store finds under ten dollars."),
    ("A Michelin-starred tasting menu.", "A private suite with champagne."),
)


def _generation(strength, effect, nll, tokens=5):
    return Generation(
        prompt="p",
        strengths={"cost": strength} if strength else {},
        text="x",
        tokens=tokens,
        effects={"cost": effect},
        nll=nll,
    )


def test_summarise_computes_ratios_pne_and_intervals():
    samples = [
        _generation(0.0, 0.0, math.log(2.0)),
        _generation(0.0, 0.2, math.log(2.0)),
        _generation(1.0, 0.3, math.log(3.0)),
        _generation(1.0, 0.5, math.log(3.0)),
        _generation(-1.0, -0.1, None, tokens=0),
        _generation(-1.0, -0.3, math.log(2.0)),
    ]
    low, zero, high = summarise(samples, "cost")
    assert [s.strength for s in (low, zero, high)] == [-1.0, 0.0, 1.0]
    assert zero.ppl == pytest.approx(2.0) and high.ppl == pytest.approx(3.0)
    assert high.ppl_ratio == pytest.approx(1.5)
    assert high.effect == pytest.approx(0.4)
    assert high.pne == pytest.approx((0.4 - 0.1) / 1.5)
    assert high.effect_ci[0] <= high.effect <= high.effect_ci[1]
    assert low.empty == 1 and low.n == 2 and low.ppl == pytest.approx(2.0)
    with pytest.raises(ValueError, match="strength 0"):
        summarise(samples[2:], "cost")


def test_run_sweep_on_a_tiny_model_round_trips_through_json(llama, tokenizer, tmp_path):
    vector = random_vector(llama, functional_range=8.0)
    result = run_sweep(
        llama,
        tokenizer,
        vector,
        prompts=["Gift ideas?", "Where to eat tonight?"],
        corpus=CORPUS,
        strengths=[-1, 0, 1],
        resamples=50,
        settings=ReplySettings(max_new_tokens=6, batch_size=4, progress=False),
    )
    assert hook_count(llama) == 0
    assert result.strengths == [-1.0, 0.0, 1.0]
    assert [s.n for s in result.summaries] == [2, 2, 2]
    assert result.at(0.0).ppl_ratio == pytest.approx(1.0)
    assert len(result.samples) == 6 and all(-2 <= g.effects["cost"] <= 2 for g in result.samples)
    # Steering changed the replies: a random vector at norm 8 moves a tiny model's greedy tokens.
    by_strength = {
        s: [g.text for g in result.samples if g.strengths.get("cost", 0.0) == s] for s in (-1, 0, 1)
    }
    assert by_strength[1] != by_strength[0] or by_strength[-1] != by_strength[0]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema"] == "langchain-steer/sweep@1"
    again = SweepResult.from_dict(data)
    assert again.summaries == result.summaries and again.samples == result.samples


def test_norm_sweep_reports_absolute_norms(llama, tokenizer):
    vector = random_vector(llama, functional_range=1.0)
    result = run_sweep(
        llama,
        tokenizer,
        vector,
        prompts=["Hi"],
        corpus=CORPUS,
        strengths=[-12.0, 0.0, 6.0, 12.0],
        scale="norm",
        resamples=20,
        settings=QUIET4,
    )
    assert result.strengths == [-12.0, 0.0, 6.0, 12.0]
    assert sorted(g.strengths.get("cost", 0.0) for g in result.samples) == [-12.0, 0.0, 6.0, 12.0]
    # The norm 6 row equals a strength-0.5 row of the same vector scaled to range 12.
    scaled = random_vector(llama, functional_range=12.0)
    [row] = generate_and_score(
        llama,
        tokenizer,
        {"cost": scaled},
        [("Hi", {"cost": 0.5})],
        {"cost": CORPUS},
        settings=QUIET4,
    )
    assert row.text == next(g.text for g in result.samples if g.strengths.get("cost") == 6.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strengths": [-1, 1]}, "0 and at least one"),
        ({"strengths": [0, 3]}, "within"),
        ({"prompts": []}, "at least one prompt"),
    ],
)
def test_run_sweep_rejects_bad_settings(llama, tokenizer, kwargs, message):
    settings = {
        "prompts": ["Hi"],
        "corpus": CORPUS,
        "strengths": [0, 1],
        "settings": ReplySettings(progress=False),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        run_sweep(llama, tokenizer, random_vector(llama), **settings)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": 5000}, "max_new_tokens"),
        ({"batch_size": 1000}, "batch_size"),
        ({"repetition_penalty": 5.0}, "repetition_penalty"),
    ],
)
def test_reply_settings_reject_bad_sizes_before_any_run(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReplySettings(**kwargs)


def test_pole_corpus_from_a_builtin_dimension_is_the_held_out_split():
    corpus = PoleCorpus.from_dimension("cost")
    assert len(corpus.negative) == len(corpus.positive) == 20
    with pytest.raises(ValueError, match="at least one text"):
        PoleCorpus((), ("x",))


def test_reports_write_json_markdown_and_valid_pngs(llama, tokenizer, tmp_path):
    result = run_sweep(
        llama,
        tokenizer,
        random_vector(llama),
        prompts=["Hi", "Gift?"],
        corpus=CORPUS,
        strengths=[-1, 0, 1],
        resamples=20,
        settings=QUIET4,
    )
    written = write_report(result, tmp_path)
    assert set(written) == {"json", "markdown", "effect", "ppl"}
    for kind in ("effect", "ppl"):
        assert written[kind].read_bytes()[:8] == PNG_SIGNATURE
    from matplotlib.image import imread

    assert imread(written["effect"]).shape[2] in (3, 4)
    markdown = written["markdown"].read_text()
    assert "Spearman" in markdown and "cost_effect.png" in markdown
    assert json.loads(written["json"].read_text())["dimension"] == "cost"


def test_diagnostics_on_a_tiny_model(llama, tokenizer, tmp_path):
    a = random_vector(llama, name="cost", layers=(0, 1), seed=1)
    b = random_vector(llama, name="age", layers=(1, 2), seed=2)
    names, matrix = cosine_matrix({"cost": a, "age": b, "cost2": a})
    assert matrix[0][0] == pytest.approx(1.0) and matrix[0][2] == pytest.approx(1.0)
    cos = torch.nn.functional.cosine_similarity(a.directions[1], b.directions[1], dim=0)
    assert matrix[0][1] == pytest.approx(float(cos), abs=1e-4)
    norms = residual_norms(llama, tokenizer, ["Hello there", "Gift ideas?"])
    assert sorted(norms) == [0, 1, 2] and all(v > 0 for v in norms.values())
    assert hook_count(llama) == 0
    with pytest.raises(ValueError, match="probe accuracies"):
        diagnose(llama, tokenizer, {"cost": a}, ["Hi"])
    recorded = random_vector(llama, name="cost", layers=(0, 1), seed=1)
    recorded = type(recorded)(
        recorded.directions,
        name="cost",
        functional_range=2.0,
        extra={"probe_accuracy": {"0": 0.5, "1": 0.9, "2": 0.7}},
    )
    result = diagnose(llama, tokenizer, {"cost": recorded}, ["Hi"])
    assert result.probe_accuracy["cost"] == [0.5, 0.9, 0.7]
    assert result.relative_norm["cost"][0] == pytest.approx(2.0 / result.residual_norm[0], rel=1e-5)
    written = write_diagnostics(result, tmp_path)
    assert written["probe_accuracy"].read_bytes()[:8] == PNG_SIGNATURE
    assert written["cosine"].read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "calibrate", "--dimension", "cost"], "--vectors"),
        (["eval", "sweep", "--dimension", "cost", "--prompts", "0"], "at least 1"),
        (["eval", "sweep", "--dimension", "nope"], "no vector for 'nope'"),
        (["eval", "sweep", "--dimension", "cost", "--model", "some/model"], "--vectors|extract"),
    ],
)
def test_eval_cli_errors_before_loading_a_model(argv, message, capsys):
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_eval_cli_needs_examples_for_a_custom_dimension(tmp_path, llama):
    random_vector(llama, name="spice").save(tmp_path / "spice.safetensors")
    with pytest.raises(SystemExit, match="--examples"):
        main(["eval", "sweep", "--dimension", "spice", "--vectors", str(tmp_path)])


def test_a_reference_model_scores_perplexity_too(llama, tokenizer):
    from tiny_models import tiny_model

    reference = tiny_model("qwen2", seed=3)
    result = run_sweep(
        llama, tokenizer, random_vector(llama), prompts=["Hi", "Gift?"], corpus=CORPUS,
        strengths=[0, 1], resamples=20,
        settings=ReplySettings(max_new_tokens=5, reference=(reference, tokenizer), progress=False),
    )  # fmt: skip
    zero = result.at(0.0)
    assert zero.reference_ppl is not None and zero.reference_ppl_ratio == pytest.approx(1.0)
    assert all(g.reference_nll is not None for g in result.samples if g.tokens)
    # A different model gives different perplexities for the same replies.
    assert zero.reference_ppl != pytest.approx(zero.ppl)
    assert result.settings["reference_model"] is not None


def test_eval_cli_rejects_non_numbers(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["eval", "sweep", "--dimension", "cost", "--strengths", "-1", "a"])
    assert raised.value.code == 2 and "invalid float value" in capsys.readouterr().err


def _probe_examples():
    from langchain_steer import Example

    negative = [Example(f"q{i}", f"cheap option {i}") for i in range(10)]
    positive = [Example(f"q{i}", f"luxury suite {i}") for i in range(10)]
    return negative, positive


def test_layer_path_reaches_generation_sweeps_calibration_and_diagnostics(llama, tokenizer):
    """A wrong layer_path must fail in every runner: proof that each one passes it down."""
    from langchain_steer.eval.diagnostics import diagnose, layer_probe_accuracies, residual_norms
    from langchain_steer.eval.judge import PoleJudge
    from langchain_steer.eval.pole_eval import generate_replies
    from langchain_steer.eval.range_calibration import calibrate_range
    from langchain_steer.eval.sweep import run_sweep
    from langchain_steer.generate import generate_batch

    model, corpus = llama, CORPUS
    vector = random_vector(model, "cost", layers=(0, 1), seed=4, functional_range=1.0)
    judge = PoleJudge("cost", ("budget", "luxury"), {"negative": ("cheap",), "positive": ("luxury",)})
    vectors = {vector.name: vector}
    bad = {"settings": ReplySettings(max_new_tokens=2, progress=False, layer_path="model.nope")}
    chat = [{"role": "user", "content": "hi"}]
    calls = {
        "generate_batch": lambda: generate_batch(
            model, tokenizer, [chat], vectors, [{vector.name: 1.0}], max_new_tokens=2,
            layer_path="model.nope",
        ),
        "generate_replies": lambda: generate_replies(
            model, tokenizer, vectors, [("hi", {vector.name: 1.0})], **bad
        ),
        "run_sweep": lambda: run_sweep(
            model, tokenizer, vector, prompts=["hi"], corpus=corpus, strengths=(0.0, 1.0), **bad
        ),
        "calibrate_range": lambda: calibrate_range(
            model, tokenizer, vector, prompts=["hi"], judge=judge,
            instructions={"negative": "Cheap.", "positive": "Fancy."}, residual_norm=1.0, **bad
        ),
        "residual_norms": lambda: residual_norms(model, tokenizer, ["hi"], layer_path="model.nope"),
        "layer_probe_accuracies": lambda: layer_probe_accuracies(
            model, tokenizer, *_probe_examples(), progress=False, layer_path="model.nope"
        ),
        "diagnose": lambda: diagnose(
            model, tokenizer, vectors, ["hi"], examples={vector.name: _probe_examples()},
            progress=False, layer_path="model.nope",
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="model.nope"):
            call()
        assert hook_count(model) == 0, name
