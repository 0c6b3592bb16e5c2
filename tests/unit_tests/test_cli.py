import io

import pytest
from helpers import random_vector
from tiny_models import tiny_model, tiny_tokenizer

from langchain_steer.cli import build_parser, main
from langchain_steer.models import clear_model_cache


@pytest.fixture
def tiny_setup(tmp_path):
    folder = tmp_path / "tiny"
    model = tiny_model("llama")
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    random_vector(model, name="cost").save(tmp_path / "vectors" / "cost.safetensors")
    yield folder, tmp_path / "vectors"
    clear_model_cache()


def test_chat_prints_a_steered_reply(tiny_setup, capsys):
    folder, vectors = tiny_setup
    args = ["chat", "hello", "--model", str(folder), "--vectors", str(vectors), "--max-tokens", "5"]
    assert main([*args, "--steer", "cost=0.8"]) == 0
    steered = capsys.readouterr().out
    assert main(args) == 0
    plain = capsys.readouterr().out
    assert steered.strip() and plain.strip()
    assert steered != plain  # the vector really steered the reply


def test_chat_rejects_bad_steering(tiny_setup):
    folder, vectors = tiny_setup
    base = ["chat", "hi", "--model", str(folder), "--vectors", str(vectors), "--max-tokens", "2"]
    with pytest.raises(SystemExit, match="Unknown steering dimension 'price'"):
        main([*base, "--steer", "price=0.5"])
    with pytest.raises(SystemExit, match="NAME=STRENGTH"):
        main([*base, "--steer", "cost"])
    with pytest.raises(SystemExit, match="allowed range"):
        main([*base, "--steer", "cost=9"])


def test_demo_prints_three_columns(tiny_setup, capsys):
    folder, vectors = tiny_setup
    assert (
        main(
            [
                "demo",
                "--model",
                str(folder),
                "--vectors",
                str(vectors),
                "--max-tokens",
                "4",
                "--prompt",
                "hi",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "cost=-1" in out and "cost=0" in out and "cost=+1" in out
    assert "system prompt: 'You are a lifestyle-planning assistant." in out
    # Each column says what the pole judge reads in it (a random model's words read as neither pole),
    # and that its made-up words are degenerate.
    readings = "\n".join(
        line for line in out.splitlines() if "judge reads:" in line or "degenerate" in line
    )
    assert readings.count("judge reads: neither pole") == 3 and "degenerate (" in readings


def test_extract_from_a_file(tiny_setup, tmp_path, capsys):
    import json

    folder, _ = tiny_setup
    examples = [
        {
            "prompt": f"p{i}",
            "negative": f"cheap {i}",
            "positive": f"LUXE {i}!",
            "split": "train" if i < 10 else "test",
        }
        for i in range(14)
    ]
    source = tmp_path / "mine.json"
    source.write_text(
        json.dumps({"name": "mine", "negative": "lo", "positive": "hi", "examples": examples})
    )
    out = tmp_path / "mine.safetensors"
    base = ["extract", "--model", str(folder), "--examples", str(source), "--out", str(out)]
    # Calibration needs the sentences a user says to ask for each pole.
    with pytest.raises(SystemExit, match="pole_prompts"):
        main(base)
    assert (
        main([*base, "--no-calibrate", "--counter-steer", "mine:positive=mine:negative:0.5"]) == 0
    )
    from langchain_steer import SteeringVector

    vector = SteeringVector.load(out)
    assert vector.name == "mine" and vector.poles == ("lo", "hi") and vector.method == "pole_mean"
    assert not vector.symmetric and vector.layers == [2]  # the default depth band of 3 layers
    steps = [step["step"] for step in vector.extra["disentangle"]]
    assert steps == ["orthogonalize", "counter_steer"]
    assert "ranges -1 / +1" in capsys.readouterr().out
    symmetric = ["--method", "mean_diff", "--layers", "0,1", "--no-calibrate", "--system", ""]
    assert main([*base, *symmetric, "--no-script-projection"]) == 0
    vector = SteeringVector.load(out)
    assert vector.symmetric and vector.layers == [0, 1] and "disentangle" not in vector.extra
    assert vector.extra["system_prompt"] is None
    with pytest.raises(SystemExit, match="--counter-steer takes"):
        main([*base, "--no-calibrate", "--counter-steer", "mine=oops"])


def test_parser_lists_the_commands():
    help_text = build_parser().format_help()
    for command in ("extract", "chat", "demo", "agent", "eval"):
        assert command in help_text


def _agent(folder, vectors, tmp_path, monkeypatch, lines, *extra):
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{line}\n" for line in lines)))
    args = ["agent", "--model", str(folder), "--vectors", str(vectors), "--max-tokens", "4"]
    return main([*args, "--db", str(tmp_path / "agent.db"), "--user", "zoe", *extra])


def test_agent_select_mode_with_set_commands(tiny_setup, tmp_path, monkeypatch, capsys):
    folder, vectors = tiny_setup
    lines = ["hello", "/set cost=-0.5", "/set cost", "/set cots=1", "/prefs", "what now?", "/quit"]
    assert _agent(folder, vectors, tmp_path, monkeypatch, lines, "--mode", "select") == 0
    out = capsys.readouterr().out
    assert "mode select" in out and "set cost -0.50" in out and "NAME=STRENGTH" in out
    assert "unknown dimension 'cots'; known: " in out and "set cots +1.00" not in out
    assert out.count("assistant> ") == 2
    assert "preferences: cost -0.50" in out
    assert out.rstrip().endswith("you> /quit")


def test_agent_calibrate_mode_asks_until_done(tiny_setup, tmp_path, monkeypatch, capsys):
    folder, vectors = tiny_setup
    lines = ["plan a trip", "maybe", "A", "B", "/quit"]
    args = ("--mode", "calibrate", "--dimensions", "cost", "--rounds", "2")
    assert _agent(folder, vectors, tmp_path, monkeypatch, lines, *args) == 0
    out = capsys.readouterr().out
    assert "[calibrate cost, round 1/2]" in out and "[calibrate cost, round 2/2]" in out
    assert "please answer A, B or same" in out
    assert "assistant> " in out and "cost -0.25" in out  # A then B: [-1, 0] then [-0.5, 0]


def test_agent_rejects_bad_settings(tiny_setup, tmp_path, monkeypatch):
    folder, vectors = tiny_setup
    with pytest.raises(SystemExit, match="2 to 4 rounds"):
        _agent(folder, vectors, tmp_path, monkeypatch, [], "--mode", "calibrate", "--rounds", "7")


def test_a_bad_examples_file_is_an_error_naming_the_file_and_the_entry(tiny_setup, tmp_path):
    import json

    folder, vectors = tiny_setup
    source = tmp_path / "bad.json"
    pairs = [{"prompt": "a", "negative": "b", "positive": "c"}, {"prompt": "a", "negative": "b"}]
    source.write_text(json.dumps({"examples": pairs}))
    base = ["--model", str(folder), "--examples", str(source)]
    with pytest.raises(SystemExit, match=r"bad\.json: examples\[1\]: 'positive' is missing"):
        main(["extract", *base, "--out", str(tmp_path / "out.safetensors")])
    sweep = ["eval", "sweep", *base, "--vectors", str(vectors), "--dimension", "cost", "--no-plots"]
    with pytest.raises(SystemExit, match=r"bad\.json: examples\[1\]: 'positive' is missing"):
        main(sweep)
    with pytest.raises(SystemExit, match=r"No examples file at .*missing\.json"):
        main(["extract", "--model", str(folder), "--examples", str(tmp_path / "missing.json"), "--out", "x"])


def test_serve_checks_its_engine_settings_before_loading_anything():
    import importlib.util

    with pytest.raises(SystemExit, match="--tensor-parallel-size is a vLLM setting"):
        main(["serve", "--tensor-parallel-size", "2"])
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(SystemExit, match="--engine vllm needs vLLM"):
            main(["serve", "--engine", "vllm"])
