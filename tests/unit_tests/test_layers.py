import pytest
import torch
from tiny_models import ARCHITECTURES, HIDDEN, LAYERS, tiny_model

from langchain_steer.layers import find_layers, hidden_size, resolve_layer_indices


def test_at_least_twelve_architectures_are_covered():
    assert len(ARCHITECTURES) >= 12


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_discovery_finds_every_decoder_block(arch):
    model = tiny_model(arch)
    layers = find_layers(model)
    assert isinstance(layers, torch.nn.ModuleList)
    assert len(layers) == LAYERS
    assert hidden_size(model) == HIDDEN
    # The blocks found are the ones the model runs: a hook on each fires once per forward.
    calls = []
    handles = [
        b.register_forward_hook(lambda *a, i=i: calls.append(i)) for i, b in enumerate(layers)
    ]
    try:
        model(torch.tensor([[5, 6, 7]]))
    finally:
        for h in handles:
            h.remove()
    assert calls == list(range(LAYERS))


def test_explicit_override(llama):
    assert find_layers(llama, "model.layers") is llama.model.layers


def test_bad_override_says_what_exists(llama):
    with pytest.raises(ValueError, match="model.layers"):
        find_layers(llama, "model.blocks")


def test_unknown_architecture_error_says_how_to_fix():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stack_a = torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 2)
            self.stack_b = torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 2)

    with pytest.raises(ValueError, match="layer_path="):
        find_layers(Odd())


def test_resolve_layer_indices():
    assert resolve_layer_indices([0, -1], 3) == [0, 2]
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer_indices([3], 3)
    with pytest.raises(ValueError, match="repeat"):
        resolve_layer_indices([1, -2], 3)
