"""The engine seam, without vLLM: the steering basis, the cache salt, engine-neutral constraints, settings.

The vLLM engine itself is tested in tests/vllm_tests (vLLM's CPU build, in its own venv).
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from langchain_steer import SteeredChatModel, SteeringVector
from langchain_steer.engines.basis import SteeringBasis
from langchain_steer.engines.vllm import cache_salt
from langchain_steer.hooks import layer_offsets
from langchain_steer.tools import Constraint, reply_constraint


def _vectors() -> dict[str, SteeringVector]:
    g = torch.Generator().manual_seed(0)
    symmetric = SteeringVector(
        directions={1: torch.randn(16, generator=g), 3: torch.randn(16, generator=g)},
        name="cost", functional_range=0.7,
    )  # fmt: skip
    two_sided = SteeringVector(
        directions={2: torch.randn(16, generator=g)},
        negative_directions={2: torch.randn(16, generator=g), 3: torch.randn(16, generator=g)},
        name="age", functional_range=0.4, negative_range=0.9,
    )  # fmt: skip
    return {"cost": symmetric, "age": two_sided}


@pytest.mark.parametrize(
    "strengths",
    [{"cost": 1.0}, {"cost": -0.6}, {"age": 0.8}, {"age": -1.0}, {"cost": 0.5, "age": -0.3}, {"cost": 2.0}],
)
def test_the_basis_adds_what_the_hf_engine_adds(strengths):
    vectors = _vectors()
    basis = SteeringBasis.from_vectors(vectors)
    row = basis.coefficients(strengths)
    assert row is not None
    expected = layer_offsets(vectors, strengths)
    for layer in basis.layers:
        got = row @ basis.matrices[layer]
        want = expected.get(layer, torch.zeros(16))
        if len(strengths) == 1:
            assert torch.equal(got, want)  # one dimension: the same factor times the same direction
        else:
            assert torch.allclose(got, want, atol=1e-6)


def test_the_basis_round_trips_through_bytes_and_ignores_what_a_worker_cannot_refuse():
    basis = SteeringBasis.from_vectors(_vectors(), positions="generated")
    again = SteeringBasis.from_bytes(basis.to_bytes())
    assert again.dimensions == ("age", "cost") and again.positions == "generated"
    assert all(torch.equal(again.matrices[k], basis.matrices[k]) for k in basis.layers)
    assert basis.coefficients({}) is None
    assert basis.coefficients({"cost": 0.0}) is None
    assert basis.coefficients({"nope": 1.0, "cost": math.nan, "age": "x"}) is None
    clamped = basis.coefficients({"cost": 9.0})
    assert clamped is not None and torch.equal(clamped, basis.coefficients({"cost": 2.0}))
    as_json = basis.coefficients('{"cost": -0.5}')
    assert as_json is not None and torch.equal(as_json, basis.coefficients({"cost": -0.5}))
    assert basis.coefficients("not json") is None
    with pytest.raises(ValueError, match="Not a steering basis"):
        SteeringBasis.from_bytes(b"garbage")
    with pytest.raises(ValueError, match="at least one vector"):
        SteeringBasis.from_vectors({})


def test_the_cache_salt_separates_steerings_and_leaves_unsteered_requests_shared():
    assert cache_salt({}, "all") is None
    assert cache_salt({"cost": 0.0}, "all") is None
    a = cache_salt({"cost": -1.0, "age": 0.5}, "all")
    assert a == cache_salt({"age": 0.5, "cost": -1.0, "time": 0.0}, "all")
    assert a != cache_salt({"cost": -1.0, "age": 0.4}, "all")
    assert a != cache_salt({"cost": -1.0, "age": 0.5}, "generated")


def test_reply_constraints_are_engine_neutral():
    empty = {"type": "object", "properties": {}}
    tool = {"type": "function", "function": {"name": "f", "parameters": empty}}
    other = {"type": "function", "function": {"name": "g", "parameters": empty}}
    assert reply_constraint([], "none", None) is None
    forced = reply_constraint([tool, other], "f", None)
    assert forced is not None and forced.kind == "json"
    assert forced.spec["properties"]["name"] == {"const": "f"}
    union = reply_constraint([tool, other], "any", None)
    assert union is not None and len(union.spec["anyOf"]) == 2
    auto = reply_constraint([tool], "auto", None)
    assert isinstance(auto, Constraint) and auto.kind == "structural_tag"
    schema = reply_constraint([], "none", {"type": "object", "properties": {"s": {"type": "string"}}})
    assert schema is not None and schema.spec["properties"]["s"]["maxLength"] == 100  # bounded


def test_engine_settings_are_checked_at_construction():
    with pytest.raises(ValueError, match="engine_args are vLLM settings"):
        SteeredChatModel(engine_args={"tensor_parallel_size": 2})
    with pytest.raises(ValueError, match="layer_path is an HF-engine setting"):
        SteeredChatModel(engine="vllm", layer_path="model.layers")
    with pytest.raises(ValueError):
        SteeredChatModel(engine="tgi")
    params = SteeredChatModel(engine="vllm", engine_args={"max_model_len": 512})._identifying_params
    assert params["engine"] == "vllm" and params["engine_args"] == {"max_model_len": 512}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_the_vllm_engine_without_vllm_says_how_to_install_it(tiny_path):
    llm = SteeredChatModel(model=str(tiny_path), engine="vllm", vectors={}, max_tokens=2)
    with pytest.raises(ImportError, match=r"langchain-steer\[vllm\]"):
        llm.invoke("hi")
