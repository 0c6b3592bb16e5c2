import json

import pytest
import torch
from helpers import random_vector

from langchain_steer import SteeringVector, steer
from langchain_steer.packs import load_vectors


def test_save_load_round_trip(tmp_path, llama):
    vector = random_vector(llama, layers=(0, 2), functional_range=7.5)
    vector = SteeringVector(
        vector.directions,
        name="cost",
        model_id="tiny-llama",
        method="probe",
        poles=("budget", "luxury"),
        functional_range=7.5,
        examples_hash="abc123",
        extra={"probe_accuracy": {"0": 0.9}},
    )
    path = vector.save(tmp_path / "cost.safetensors")
    loaded = SteeringVector.load(path)
    assert loaded.metadata() == vector.metadata()
    for layer in vector.layers:
        assert torch.equal(loaded.directions[layer], vector.directions[layer])
    assert loaded.hidden_size == 32 and loaded.layers == [0, 2]


def test_load_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="no langchain-steer metadata"):
        SteeringVector.load(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a readable"):
        SteeringVector.load(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        SteeringVector.load(tmp_path / "missing.safetensors")


def test_value_semantics(llama):
    a = random_vector(llama, seed=1, functional_range=2.0)
    b = random_vector(llama, seed=2, functional_range=2.0)
    original = a.directions[0].clone()
    doubled = a * 2
    assert torch.equal(a.directions[0], original), "operations must not mutate their operands"
    assert torch.allclose(doubled.directions[0], original * 2)
    assert torch.allclose((2 * a).directions[0], doubled.directions[0])
    assert torch.allclose((a / 2).directions[0], original / 2)
    assert (-a).poles == ("luxury", "budget")
    total = a + b
    assert total.functional_range == 2.0
    assert torch.allclose(total.directions[1], a.directions[1] + b.directions[1])
    zero = a - a
    assert all(bool((d == 0).all()) for d in zero.directions.values())
    assert zero.poles == a.poles
    half = a.to(dtype=torch.float16)
    assert half.dtype == torch.float16 and a.dtype == torch.float32
    with pytest.raises(TypeError):
        a * "x"  # noqa: B018


def test_sum_with_different_ranges_steers_like_both(llama):
    a = random_vector(llama, seed=1, functional_range=2.0)
    b = random_vector(llama, seed=2, layers=(1, 2), functional_range=5.0)
    ids = torch.tensor([[4, 9, 30, 31]])
    with torch.no_grad(), steer(llama, {"a": a, "b": b}, {"a": 0.6, "b": 0.6}):
        separate = llama(ids).logits
    with torch.no_grad(), steer(llama, {"ab": a + b}, {"ab": 0.6}):
        summed = llama(ids).logits
    assert (a + b).functional_range == 1.0
    torch.testing.assert_close(separate, summed, rtol=1e-5, atol=1e-5)


def test_invalid_vectors_are_rejected():
    with pytest.raises(ValueError, match="at least one layer"):
        SteeringVector({})
    with pytest.raises(ValueError, match="1-D"):
        SteeringVector({0: torch.zeros(4), 1: torch.zeros(5)})
    with pytest.raises(ValueError, match="functional_range"):
        SteeringVector({0: torch.zeros(4)}, functional_range=float("nan"))
    with pytest.raises(ValueError, match="hidden size"):
        SteeringVector({0: torch.zeros(4)}) + SteeringVector({0: torch.zeros(5)})


def test_metadata_is_plain_json(llama):
    json.dumps(random_vector(llama).metadata())


def two_sided(model, seed=3, negative_range=3.0):
    positive = random_vector(model, seed=seed, layers=(0, 1), functional_range=2.0)
    negative = random_vector(model, seed=seed + 1, layers=(1, 2))
    return SteeringVector(
        positive.directions,
        name="cost",
        poles=("budget", "luxury"),
        functional_range=2.0,
        negative_directions=negative.directions,
        negative_range=negative_range,
    )


def test_two_sided_vector_steers_each_pole_with_its_own_side(llama):
    vector = two_sided(llama)
    assert not vector.symmetric and vector.layers == [0, 1, 2]
    ids = torch.tensor([[4, 9, 30, 31]])
    with torch.no_grad():
        plain = llama(ids).logits
        with steer(llama, {"cost": vector}, {"cost": 0.0}):
            zero = llama(ids).logits
        with steer(llama, {"cost": vector}, {"cost": 0.5}):
            positive = llama(ids).logits
        with steer(
            llama, {"p": SteeringVector(vector.directions, functional_range=1.0)}, {"p": 1.0}
        ):
            by_hand_positive = llama(ids).logits
        with steer(llama, {"cost": vector}, {"cost": -0.5}):
            negative = llama(ids).logits
        manual = SteeringVector(vector.negative_directions, functional_range=1.5)
        with steer(llama, {"n": manual}, {"n": 1.0}):
            by_hand_negative = llama(ids).logits
    assert torch.equal(zero, plain)
    torch.testing.assert_close(positive, by_hand_positive)
    torch.testing.assert_close(negative, by_hand_negative)
    assert not torch.allclose(positive, negative)


def test_two_sided_identities_and_offsets(llama):
    vector = two_sided(llama)
    zero = vector - vector
    for strength in (-1.0, 0.5):
        assert all(bool((t == 0).all()) for t in zero.offsets(strength).values())
    assert set(vector.offsets(0.5)) == {0, 1} and set(vector.offsets(-0.5)) == {1, 2}
    torch.testing.assert_close(vector.offsets(-0.5)[2], vector.negative_directions[2] * 1.5)
    doubled = vector * 2
    torch.testing.assert_close(doubled.offsets(-1.0)[1], vector.offsets(-1.0)[1] * 2)
    summed = vector + random_vector(llama, seed=9, functional_range=4.0)
    assert summed.functional_range == 1.0 and not summed.symmetric


def test_two_sided_round_trip_and_batch_rows(tmp_path, llama):
    vector = two_sided(llama)
    loaded = SteeringVector.load(vector.save(tmp_path / "cost.safetensors"))
    assert loaded.metadata() == vector.metadata()
    for layer in (1, 2):
        assert torch.equal(loaded.negative_directions[layer], vector.negative_directions[layer])
    ids = torch.tensor([[4, 9, 30, 31], [4, 9, 30, 31], [4, 9, 30, 31]])
    with torch.no_grad(), steer(llama, {"cost": vector}, {"cost": [-0.7, 0.0, 0.4]}):
        rows = llama(ids).logits
    for i, strength in enumerate((-0.7, 0.0, 0.4)):
        with torch.no_grad(), steer(llama, {"cost": vector}, {"cost": strength}):
            solo = llama(ids[:1]).logits
        torch.testing.assert_close(rows[i : i + 1], solo, rtol=1e-5, atol=1e-5)


def test_load_names_the_file_on_bad_tensors_and_versions(tmp_path, llama):
    from safetensors.torch import save_file

    meta = json.dumps({"format_version": 2, "name": "x"})
    save_file(
        {"layer.x": torch.zeros(32)}, str(tmp_path / "bad.safetensors"), {"langchain_steer": meta}
    )
    with pytest.raises(ValueError, match="bad.safetensors.*unexpected tensor"):
        SteeringVector.load(tmp_path / "bad.safetensors")
    future = json.dumps({"format_version": 99})
    save_file(
        {"layer.0": torch.zeros(32)}, str(tmp_path / "new.safetensors"), {"langchain_steer": future}
    )
    with pytest.raises(ValueError, match="format version 99"):
        SteeringVector.load(tmp_path / "new.safetensors")


def _rewrite(path, tensors):
    """Rewrite a saved vector file with other tensors, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, str(path), metadata=metadata)


def test_nan_or_infinite_directions_are_rejected(tmp_path, llama):
    good = random_vector(llama)
    for bad in (float("nan"), float("inf")):
        poisoned = {k: v.clone() for k, v in good.directions.items()}
        poisoned[good.layers[0]][3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            SteeringVector(directions=poisoned, name="cost")
        path = tmp_path / "cost.safetensors"
        good.save(path)
        _rewrite(path, {f"layer.{k}": v for k, v in poisoned.items()})
        with pytest.raises(ValueError, match=r"cost\.safetensors: .*NaN or infinite"):
            SteeringVector.load(path)


def test_malformed_tensor_keys_name_the_file(tmp_path, llama):
    vector = random_vector(llama)
    path = tmp_path / "odd.safetensors"
    for key in ("layer", "layer.x", "layer.1.2", "weights.0"):
        vector.save(path)
        _rewrite(path, {key: vector.directions[vector.layers[0]]})
        with pytest.raises(ValueError, match=r"odd\.safetensors"):
            SteeringVector.load(path)


def test_two_files_with_one_dimension_in_a_folder_are_rejected(tmp_path, llama):
    random_vector(llama, name="cost").save(tmp_path / "cost.safetensors")
    random_vector(llama, name="cost", seed=3).save(tmp_path / "cost-v2.safetensors")
    with pytest.raises(ValueError, match="both hold the dimension 'cost'"):
        load_vectors(tmp_path)
