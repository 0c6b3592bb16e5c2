import pytest
import torch
from tiny_models import tiny_model

from langchain_steer import Example
from langchain_steer import anchors as anchors_module
from langchain_steer.anchors import anchor_activations, anchor_key
from langchain_steer.extract import collect_activations

ANCHOR = [Example(f"plan {i}", f"a plain answer number {i}") for i in range(6)]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGCHAIN_STEER_CACHE", str(tmp_path))
    monkeypatch.setattr(anchors_module, "_MEMORY", {})
    return tmp_path / "anchors"


def _forward_passes(model):
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_the_anchor_is_computed_once_then_read_from_memory_and_disk(llama, tokenizer, cache):
    expected = collect_activations(llama, tokenizer, ANCHOR, progress=False).mean(1)
    calls, handle = _forward_passes(llama)
    try:
        first = anchor_activations(llama, tokenizer, ANCHOR, progress=False)
        computed = len(calls)
        second = anchor_activations(llama, tokenizer, ANCHOR, progress=False)
        assert len(calls) == computed > 0  # the second call ran no forward pass
        anchors_module._MEMORY.clear()  # a new process: only the disk entry is left
        third = anchor_activations(llama, tokenizer, ANCHOR, progress=False)
        assert len(calls) == computed
    finally:
        handle.remove()
    torch.testing.assert_close(first, expected)
    assert torch.equal(first, second) and torch.equal(first, third)
    assert len(list(cache.glob("*.safetensors"))) == 1
    first.zero_()  # callers get copies: the cached tensor is untouched
    assert torch.equal(anchor_activations(llama, tokenizer, ANCHOR, progress=False), third)


def test_the_key_changes_with_everything_the_activations_depend_on(llama, tokenizer):
    base = anchor_key(llama, tokenizer, ANCHOR, system=None)
    assert anchor_key(llama, tokenizer, ANCHOR, system=None) == base
    assert anchor_key(llama, tokenizer, ANCHOR, system="Be brief.") != base
    assert anchor_key(llama, tokenizer, ANCHOR[:-1], system=None) != base
    assert anchor_key(tiny_model("qwen2"), tokenizer, ANCHOR, system=None) != base
    changed = tiny_model("llama")
    with torch.no_grad():
        next(changed.parameters())[0, 0] += 1.0  # the same configuration, other weights
    assert anchor_key(changed, tokenizer, ANCHOR, system=None) != base


def test_a_corrupt_entry_is_recomputed_and_replaced(llama, tokenizer, cache):
    good = anchor_activations(llama, tokenizer, ANCHOR, progress=False)
    (entry,) = cache.glob("*.safetensors")
    entry.write_bytes(b"not a safetensors file")
    anchors_module._MEMORY.clear()
    assert torch.equal(anchor_activations(llama, tokenizer, ANCHOR, progress=False), good)
    anchors_module._MEMORY.clear()
    calls, handle = _forward_passes(llama)
    try:
        assert torch.equal(anchor_activations(llama, tokenizer, ANCHOR, progress=False), good)
    finally:
        handle.remove()
    assert not calls  # the replaced entry loads


def test_cache_false_computes_and_stores_nothing(llama, tokenizer, cache):
    anchor_activations(llama, tokenizer, ANCHOR, progress=False, cache=False)
    assert not cache.exists() and not anchors_module._MEMORY
    with pytest.raises(ValueError, match="at least one"):
        anchor_activations(llama, tokenizer, [], progress=False)
