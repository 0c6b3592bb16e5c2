"""Find the decoder blocks (the residual-stream layers) of any decoder-only transformer.

Steering adds a vector to the output of decoder blocks, so we need the ``nn.ModuleList`` that holds
them. Architectures name it differently (``model.layers`` for Llama-likes, ``transformer.h`` for GPT-2,
``gpt_neox.layers``, ``model.decoder.layers`` for OPT, ``transformer.blocks`` for MPT...). Discovery
tries the known paths first, then any ``ModuleList`` whose length equals the configured number of
layers. When both fail, the error says how to pass the path explicitly.

Everything here is a pure function of the model: nothing is cached or attached to modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["KNOWN_LAYER_PATHS", "find_layers", "hidden_size", "num_layers", "resolve_layer_indices"]

KNOWN_LAYER_PATHS: tuple[str, ...] = (
    "model.layers",  # Llama, Mistral, Qwen2/3, Gemma 1/2/3, Phi, Phi3, StableLM, OLMo, Granite...
    "model.language_model.layers",  # multimodal wrappers (Gemma 3, Llava-style)
    "language_model.model.layers",
    "transformer.h",  # GPT-2, GPT-J, Bloom, Falcon, CodeGen, GPT-BigCode
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "model.decoder.layers",  # OPT
    "transformer.blocks",  # MPT
    "transformer.layers",
    "layers",  # a bare base model
    "h",
)


def _get_path(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _expected_layers(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    text_config = getattr(config, "get_text_config", None)
    if callable(text_config):
        config = text_config()
    for attr in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def find_layers(model: nn.Module, layer_path: str | None = None) -> nn.ModuleList:
    """Return the ``ModuleList`` of decoder blocks of ``model``.

    Args:
        model: a HuggingFace causal LM (or its base model).
        layer_path: dotted attribute path to the blocks, e.g. ``"model.layers"``. Use it for an
            architecture that discovery does not know.

    Raises:
        ValueError: the explicit path does not name a ``ModuleList``, or discovery found no
            candidate; the message lists the ``ModuleList`` paths the model has.
    """
    if layer_path is not None:
        found = _get_path(model, layer_path)
        if not isinstance(found, nn.ModuleList):
            raise ValueError(
                f"layer_path={layer_path!r} does not name a torch.nn.ModuleList in "
                f"{type(model).__name__}. Candidates: {_module_lists(model) or 'none'}."
            )
        return found
    expected = _expected_layers(model)
    for path in KNOWN_LAYER_PATHS:
        found = _get_path(model, path)
        if isinstance(found, nn.ModuleList) and (expected is None or len(found) == expected):
            return found
    candidates = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    if expected is not None:
        matching = [(p, m) for p, m in candidates if len(m) == expected]
        if len(matching) == 1:
            return matching[0][1]
    raise ValueError(
        f"Could not find the decoder layers of {type(model).__name__}. Pass the dotted path of "
        f"its block list explicitly, e.g. layer_path='model.layers'. ModuleLists in this model: "
        f"{_module_lists(model) or 'none'}."
    )


def _module_lists(model: nn.Module) -> str:
    return ", ".join(
        f"{path!r} ({len(module)})"
        for path, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
    )


def num_layers(model: nn.Module, layer_path: str | None = None) -> int:
    """Number of decoder blocks of ``model``."""
    return len(find_layers(model, layer_path))


def hidden_size(model: nn.Module) -> int:
    """Width of the residual stream of ``model``, read from its config.

    Raises:
        ValueError: the config names no hidden size.
    """
    config = getattr(model, "config", None)
    if config is not None and callable(getattr(config, "get_text_config", None)):
        config = config.get_text_config()
    for attr in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise ValueError(f"Cannot read the hidden size of {type(model).__name__} from its config.")


def resolve_layer_indices(indices: Sequence[int], total: int) -> list[int]:
    """Normalise layer indices (negative ones count from the end) and check they exist.

    Raises:
        ValueError: an index is out of range or repeated.
    """
    resolved = []
    for index in indices:
        value = index + total if index < 0 else index
        if not 0 <= value < total:
            raise ValueError(
                f"Layer index {index} is out of range for a model with {total} layers."
            )
        resolved.append(value)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"Layer indices repeat: {list(indices)}")
    return resolved
