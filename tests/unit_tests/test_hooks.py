import warnings

import pytest
import torch
from helpers import all_layers, hook_count, random_vector

from langchain_steer import apply_steering, steer
from langchain_steer.hooks import MAX_STRENGTH

IDS = torch.tensor([[5, 9, 14, 23, 7, 11], [8, 3, 40, 41, 42, 9]])


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def test_zero_strength_is_bit_identical_and_steering_changes_logits(arch_model):
    arch, model = arch_model
    vector = random_vector(model, layers=all_layers(model))
    plain = logits(model)
    with steer(model, {"cost": vector}, {"cost": 0.0}) as handle:
        assert not handle.active, "a zero strength must not register any hook"
        assert torch.equal(logits(model), plain)
    with steer(model, {"cost": vector}, {"cost": 1.0}) as handle:
        assert handle.active
        steered = logits(model)
    assert not torch.equal(steered, plain)
    assert torch.equal(logits(model), plain), f"{arch}: steering leaked past the context"


def test_exception_inside_steer_removes_every_hook(arch_model):
    _, model = arch_model
    vector = random_vector(model, layers=all_layers(model))
    before = hook_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(model, {"cost": vector}, {"cost": 0.5}):
            assert hook_count(model) == before + len(all_layers(model))
            raise RuntimeError("boom")
    assert hook_count(model) == before


def test_v_minus_v_equals_unsteered(llama):
    vector = random_vector(llama)
    plain = logits(llama)
    with steer(llama, {"cost": vector - vector}, {"cost": 1.0}):
        assert torch.equal(logits(llama), plain)


def test_dimensions_compose_as_a_signed_sum(llama):
    a = random_vector(llama, "cost", seed=1)
    b = random_vector(llama, "age", seed=2)
    with steer(llama, {"cost": a, "age": b}, {"cost": 0.7, "age": -0.4}):
        both = logits(llama)
    combined = a * 0.7 + b * -0.4
    with steer(llama, {"x": combined}, {"x": 1.0}):
        summed = logits(llama)
    torch.testing.assert_close(both, summed, rtol=1e-5, atol=1e-5)
    with steer(llama, {"cost": a}, {"cost": 0.5}):
        half = logits(llama)
    with steer(llama, {"cost": -a}, {"cost": -0.5}):
        double_negative = logits(llama)
    assert torch.equal(half, double_negative)


def test_per_row_strengths_match_uniform_runs_row_by_row(llama):
    vector = random_vector(llama)
    plain = logits(llama)
    with steer(llama, {"cost": vector}, {"cost": 0.8}):
        uniform = logits(llama)
    with steer(llama, {"cost": vector}, {"cost": [0.8, 0.0]}):
        mixed = logits(llama)
    assert torch.equal(mixed[0], uniform[0])
    assert torch.equal(mixed[1], plain[1])


def test_per_row_batch_mismatch_is_a_clear_error(llama):
    vector = random_vector(llama)
    with steer(llama, {"cost": vector}, {"cost": [0.5, 0.5, 0.5]}):
        with pytest.raises(ValueError, match="3 rows"):
            logits(llama)
    assert hook_count(llama) == 0


def test_generated_policy_leaves_the_prompt_alone(llama):
    vector = random_vector(llama)
    plain = logits(llama)
    with steer(llama, {"cost": vector}, {"cost": 1.0}, positions="generated"):
        steered = logits(llama)
    assert torch.equal(steered[:, :-1], plain[:, :-1])
    assert not torch.equal(steered[:, -1], plain[:, -1])


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_kv_cache_generation_matches_full_recomputation(llama, positions):
    """Greedy generate (KV cache) equals a loop that recomputes the whole sequence each step."""
    vector = random_vector(llama, functional_range=8.0)
    prompt = IDS[:1]
    with steer(llama, {"cost": vector}, {"cost": 1.0}, positions=positions):
        cached = llama.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
        )
    sequence = prompt
    for _ in range(6):
        if positions == "all":
            with steer(llama, {"cost": vector}, {"cost": 1.0}):
                step = logits(llama, sequence)[:, -1]
        else:
            # generated tokens are steered at every layer; rebuild that with per-step hooks.
            with steer(llama, {"cost": vector}, {"cost": 1.0}, positions="generated"):
                step = _generated_only_logits(llama, sequence, prompt.shape[1], vector)
        sequence = torch.cat([sequence, step.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, sequence)


def _generated_only_logits(model, sequence, prompt_len, vector):
    # Reference: feed the prompt, then each generated token one at a time through the cache.
    out = model(sequence[:, :prompt_len], use_cache=True)
    past = out.past_key_values
    last = out.logits[:, -1]
    for t in range(prompt_len, sequence.shape[1]):
        out = model(sequence[:, t : t + 1], cache=past, use_cache=True)
        past, last = out.past_key_values, out.logits[:, -1]
    return last


def test_strength_validation_names_the_dimension(llama):
    vector = random_vector(llama)
    for bad in (float("nan"), float("inf"), MAX_STRENGTH + 0.1, -(MAX_STRENGTH + 1)):
        with pytest.raises(ValueError, match="'cost'"):
            apply_steering(llama, {"cost": vector}, {"cost": bad})
    with pytest.raises(ValueError, match="Unknown steering dimension 'price'.*cost"):
        apply_steering(llama, {"cost": vector}, {"price": 0.5})
    with pytest.warns(UserWarning, match="beyond ±1"):
        apply_steering(llama, {"cost": vector}, {"cost": 1.5}).remove()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_steering(llama, {"cost": vector}, {"cost": -1.0}).remove()
    assert hook_count(llama) == 0


def test_wrong_hidden_size_is_rejected(llama):
    from tiny_models import tiny_model

    other = tiny_model("gpt2")
    vector = random_vector(llama)
    wide = type(vector)({0: torch.ones(48)}, name="cost")
    with pytest.raises(ValueError, match="hidden size 48.*hidden size 32"):
        apply_steering(llama, {"cost": wide}, {"cost": 1.0})
    assert hook_count(other) == 0


def test_vector_for_missing_layer_is_rejected(llama):
    vector = random_vector(llama, layers=(7,))
    with pytest.raises(ValueError, match="only 3 layers"):
        apply_steering(llama, {"cost": vector}, {"cost": 1.0})


def test_handle_removes_manually_and_twice(llama):
    handle = apply_steering(llama, {"cost": random_vector(llama)}, {"cost": 0.3})
    assert hook_count(llama) == 2
    handle.remove()
    handle.remove()
    assert hook_count(llama) == 0
