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
    assert (
        main(
            [
                "extract",
                "--model",
                str(folder),
                "--examples",
                str(source),
                "--out",
                str(out),
                "--top-k",
                "1",
                "--calibration-examples",
                "4",
            ]
        )
        == 0
    )
    from langchain_steer import SteeringVector

    vector = SteeringVector.load(out)
    assert vector.name == "mine" and vector.poles == ("lo", "hi") and vector.functional_range > 0
    assert "calibration" in vector.extra


def test_parser_lists_the_three_commands():
    help_text = build_parser().format_help()
    for command in ("extract", "chat", "demo"):
        assert command in help_text
