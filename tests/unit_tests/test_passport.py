"""The vector passport: recorded at extraction, kept on disk, checked on use and in arithmetic."""

import dataclasses
import json

import pytest
import torch
from helpers import random_vector
from tiny_models import tiny_model, tiny_tokenizer

from langchain_steer import SteeringVector, steer
from langchain_steer.dimensions import Example
from langchain_steer.extract import extract_vector
from langchain_steer.passport import ForeignVectorError, Passport

PROMPTS = [f"request {i}" for i in range(8)]
NEGATIVE = [Example(p, f"cheap and simple option number {i}") for i, p in enumerate(PROMPTS)]
POSITIVE = [Example(p, f"LUXURY GRAND VELVET SUITE #{i}!!") for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def extracted(llama, tokenizer):
    return extract_vector(
        llama, tokenizer, NEGATIVE, POSITIVE, name="cost", method="mean_diff", layers=[1, 2],
        progress=False,
    )  # fmt: skip


def test_extraction_fills_the_passport(extracted, llama, tokenizer):
    passport = extracted.passport
    assert passport is not None
    assert (passport.architecture, passport.hidden_size, passport.layer_count) == ("llama", 32, 3)
    assert passport.tokenizer and passport.chat_template and sorted(passport.residual_norms) == [1, 2]
    assert all(v > 0 for v in passport.residual_norms.values())
    assert passport == Passport.of(llama, tokenizer, residual_norms=passport.residual_norms)


def test_the_passport_survives_save_and_load(extracted, tmp_path):
    loaded = SteeringVector.load(extracted.save(tmp_path / "cost.safetensors"))
    assert loaded.passport == extracted.passport
    assert json.loads(json.dumps(loaded.metadata()))["format_version"] == 3


def test_a_vector_for_another_model_is_refused_unless_overridden(extracted, tokenizer):
    other = tiny_model("qwen2")  # same width and depth, another architecture
    with pytest.raises(ForeignVectorError, match="architecture 'llama' vs 'qwen2'"):
        extracted.validate_for(other, tokenizer=tokenizer)
    with pytest.raises(ForeignVectorError, match="allow_foreign=True"):
        with steer(other, {"cost": extracted}, {"cost": 1.0}):
            pass
    with pytest.warns(UserWarning, match="Using it anyway"):
        with steer(other, {"cost": extracted}, {"cost": 1.0}, allow_foreign=True):
            other(input_ids=torch.tensor([[5, 6, 7]]))


def test_another_tokenizer_or_chat_template_is_refused(extracted, llama):
    with pytest.raises(ForeignVectorError, match="chat_template fingerprint"):
        extracted.validate_for(llama, tokenizer=tiny_tokenizer(chat_template="{{ messages }}"))
    extracted.validate_for(llama, tokenizer=tiny_tokenizer())  # an equal tokenizer passes


def test_adding_vectors_from_different_models_raises(extracted, llama):
    foreign = dataclasses.replace(
        extracted, passport=dataclasses.replace(extracted.passport, architecture="mistral")
    )
    with pytest.raises(ForeignVectorError, match="different models"):
        extracted + foreign
    same = extracted + extracted
    assert same.passport == extracted.passport
    legacy = random_vector(llama, layers=(1, 2))  # no passport: the known one is kept
    assert (legacy + extracted).passport == extracted.passport


def test_an_unknown_format_version_or_bad_passport_raises_naming_the_file(extracted, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = extracted.save(tmp_path / "cost.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        meta = json.loads(handle.metadata()["langchain_steer"])
    for change, message in ((dict(format_version=99), "format version 99"),
                            (dict(passport={"architecture": "llama"}), "passport is malformed")):  # fmt: skip
        broken = tmp_path / "broken.safetensors"
        save_file(tensors, str(broken), metadata={"langchain_steer": json.dumps({**meta, **change})})
        with pytest.raises(ValueError, match=message) as raised:
            SteeringVector.load(broken)
        assert "broken.safetensors" in str(raised.value)


def test_files_without_a_passport_still_load(tmp_path, llama):
    vector = random_vector(llama, layers=(0,))
    path = vector.save(tmp_path / "old.safetensors")
    assert SteeringVector.load(path).passport is None
    SteeringVector.load(path).validate_for(llama)
