"""llama.cpp control vectors (GGUF) and vector packs, on tiny random models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from langchain_steer import SteeredChatModel, SteeringVector, steer
from langchain_steer.packs import from_pretrained, load_vectors, save_pretrained
from langchain_steer.passport import Passport


def _vector(name="cost", layers=(1, 2), size=32, two_sided=False, seed=0) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    negative = {k: torch.randn(size, generator=g) for k in layers} if two_sided else None
    return SteeringVector(
        directions={k: torch.randn(size, generator=g) for k in layers},
        negative_directions=negative, name=name, poles=("budget", "luxury"),
        functional_range=0.7, negative_range=0.4 if two_sided else None,
    )  # fmt: skip


def _stamped(vector: SteeringVector, model, tokenizer) -> SteeringVector:
    return dataclasses.replace(vector, passport=Passport.of(model, tokenizer))


@pytest.mark.parametrize(("two_sided", "strength"), [(False, 1.0), (False, -0.5), (True, 0.8), (True, -1.0)])
def test_a_gguf_round_trip_keeps_every_direction_exactly(tmp_path, two_sided, strength):
    vector = _vector(two_sided=two_sided)
    path = vector.export_gguf(tmp_path / "cost.gguf", strength=strength)
    back = SteeringVector.import_gguf(path)
    expected = vector.offsets(strength)
    assert back.layers == sorted(expected)
    for layer, tensor in expected.items():
        assert torch.equal(back.directions[layer], tensor.to(torch.float32))
    # Strength 1 of the imported vector adds the file's offsets, as llama.cpp's scale 1 does.
    assert all(torch.equal(back.offsets(1.0)[k], expected[k]) for k in expected)
    assert back.name == "cost" and back.extra["source"] == "gguf"


def test_layer_zero_and_bad_strengths_cannot_be_exported(tmp_path):
    with pytest.raises(ValueError, match="layer 0"):
        _vector(layers=(0, 1)).export_gguf(tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="non-zero"):
        _vector().export_gguf(tmp_path / "x.gguf", strength=0.0)


def test_malformed_files_get_clear_errors(tmp_path):
    import gguf

    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="garbage.gguf: not a readable GGUF file"):
        SteeringVector.import_gguf(garbage)
    model_file = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(model_file), "llama")
    writer.add_tensor("blk.0.attn_q.weight", np.zeros(4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="not a control vector"):
        SteeringVector.import_gguf(model_file)


def test_a_file_repeng_exports_imports(tmp_path):
    if not hasattr(np, "float_"):
        # repeng 0.4.0 names np.float_ in a type annotation evaluated at import; NumPy 2 removed the alias.
        np.float_ = np.float64  # type: ignore[attr-defined]
    repeng = pytest.importorskip("repeng", reason="repeng is installed by `make install-test`")
    directions = {1: np.linspace(-1, 1, 32, dtype=np.float32), 3: np.arange(32, dtype=np.float32)}
    repeng.ControlVector(model_type="llama", directions=directions).export_gguf(str(tmp_path / "r.gguf"))
    vector = SteeringVector.import_gguf(tmp_path / "r.gguf", name="calm")
    assert vector.name == "calm" and vector.layers == [1, 3]
    for layer, array in directions.items():
        assert torch.equal(vector.directions[layer], torch.from_numpy(array))


def test_our_layer_numbering_is_llama_cpps(tmp_path):
    """The same file applied by us, and as llama.cpp applies it, gives the same outputs.

    (The logits and the last hidden state are compared: which intermediate hidden states transformers
    records before or after a forward hook depends on the order the hooks were registered in.)
    """
    import gguf

    model = tiny_model("llama", seed=5)
    vector = _vector(layers=(1, 2), size=model.config.hidden_size)
    path = vector.export_gguf(tmp_path / "v.gguf", strength=0.9)
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    with steer(model, {"v": SteeringVector.import_gguf(path, model)}, {"v": 1.0}):
        ours = model(ids, output_hidden_states=True)
    # llama.cpp: after block il, `cur = cur + direction.il` (llama_control_vector::apply_to).
    reader = gguf.GGUFReader(str(path))
    handles = []
    for tensor in reader.tensors:
        layer = int(tensor.name.split(".")[1])
        direction = torch.from_numpy(np.asarray(tensor.data, dtype=np.float32).copy())

        def add(module, args, output, direction=direction):
            return (output[0] + direction, *output[1:]) if isinstance(output, tuple) else output + direction

        handles.append(model.model.layers[layer].register_forward_hook(add))
    try:
        theirs = model(ids, output_hidden_states=True)
    finally:
        for handle in handles:
            handle.remove()
    plain = model(ids)
    assert torch.equal(ours.logits, theirs.logits)
    assert torch.equal(ours.hidden_states[-1], theirs.hidden_states[-1])
    assert not torch.allclose(ours.logits, plain.logits)


def test_a_vector_pack_round_trips_and_loads_everywhere(tmp_path):
    model, tokenizer = tiny_model("llama", seed=5), tiny_tokenizer()
    size = model.config.hidden_size
    vectors = {
        "cost": _stamped(_vector(size=size), model, tokenizer),
        "age": _stamped(_vector("age", (2,), size, True, 1), model, tokenizer),
    }
    folder = save_pretrained(vectors, tmp_path / "pack")
    assert sorted(p.name for p in folder.iterdir()) == ["steering_config.json", "vectors.safetensors"]
    config = json.loads((folder / "steering_config.json").read_text())
    assert config["format_version"] == 1 and sorted(config["dimensions"]) == ["age", "cost"]
    for loaded in (from_pretrained(folder), load_vectors(folder)):
        assert sorted(loaded) == ["age", "cost"]
        for name, vector in vectors.items():
            assert loaded[name].tensors().keys() == vector.tensors().keys()
            assert all(torch.equal(loaded[name].tensors()[k], t) for k, t in vector.tensors().items())
            assert loaded[name].metadata() == vector.metadata()


def test_the_chat_model_takes_a_pack(tmp_path, tiny_path):
    from langchain_steer.models import load_model

    model, tokenizer = load_model(tiny_path)
    size = model.config.hidden_size
    vectors = {"cost": _stamped(_vector(size=size), model, tokenizer)}
    folder = save_pretrained(vectors, tmp_path / "pack")
    by_pack = SteeredChatModel(model=tiny_path, vectors=str(folder), max_tokens=5)
    by_mapping = SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=5)
    assert by_pack.steering_dimensions() == ["cost"]
    assert (
        by_pack.invoke("hi", steering={"cost": 1.0}).content
        == by_mapping.invoke("hi", steering={"cost": 1.0}).content
    )


def test_bad_packs_get_clear_errors(tmp_path):
    model_a, model_b = tiny_model("llama", seed=5), tiny_model("qwen2", seed=5)
    a = _stamped(_vector(size=32), model_a, tiny_tokenizer())
    b = _stamped(_vector("age", size=32), model_b, tiny_tokenizer())
    with pytest.raises(ValueError, match="one model's vectors"):
        save_pretrained({"cost": a, "age": b}, tmp_path / "mixed")
    with pytest.raises(ValueError, match="at least one"):
        save_pretrained({}, tmp_path / "empty")
    folder = save_pretrained({"cost": a}, tmp_path / "pack")
    config = json.loads((folder / "steering_config.json").read_text())
    (folder / "steering_config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        from_pretrained(folder)
    (folder / "vectors.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no vectors.safetensors"):
        from_pretrained(folder)
