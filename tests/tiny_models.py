"""Tiny random decoder-only models built from configs: nothing is downloaded."""

from __future__ import annotations

from typing import Any

import torch
import transformers as tf

VOCAB = 128
HIDDEN = 32
LAYERS = 3

_COMMON: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=1024,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
_GQA = dict(num_key_value_heads=2, head_dim=8)

# architecture -> (config class, extra kwargs)
ARCHITECTURES: dict[str, tuple[type, dict[str, Any]]] = {
    "llama": (tf.LlamaConfig, _GQA),
    "mistral": (tf.MistralConfig, _GQA),
    "qwen2": (tf.Qwen2Config, _GQA),
    "qwen3": (tf.Qwen3Config, _GQA),
    "gemma": (tf.GemmaConfig, _GQA),
    "gemma2": (tf.Gemma2Config, _GQA),
    "gemma3": (tf.Gemma3TextConfig, _GQA),
    "phi3": (tf.Phi3Config, dict(num_key_value_heads=2)),
    "phi": (tf.PhiConfig, {}),
    "stablelm": (tf.StableLmConfig, dict(num_key_value_heads=2)),
    "olmo": (tf.OlmoConfig, dict(num_key_value_heads=2)),
    "olmo2": (tf.Olmo2Config, dict(num_key_value_heads=2)),
    "granite": (tf.GraniteConfig, dict(num_key_value_heads=2)),
    "starcoder2": (tf.Starcoder2Config, dict(num_key_value_heads=2)),
    "gpt_neox": (tf.GPTNeoXConfig, {}),
    "falcon": (tf.FalconConfig, dict(new_decoder_architecture=False, multi_query=True)),
    "gpt2": (tf.GPT2Config, dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=4, n_positions=1024)),
    "gptj": (
        tf.GPTJConfig,
        dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=4, rotary_dim=4, n_positions=1024),
    ),
    "bloom": (tf.BloomConfig, dict(n_layer=LAYERS, n_head=4)),
    "opt": (tf.OPTConfig, dict(ffn_dim=64, word_embed_proj_dim=HIDDEN)),
    "mpt": (tf.MptConfig, dict(d_model=HIDDEN, n_layers=LAYERS, n_heads=4)),
    "gpt_bigcode": (
        tf.GPTBigCodeConfig,
        dict(n_embd=HIDDEN, n_layer=LAYERS, n_head=4, n_positions=1024),
    ),
}


def tiny_model(arch: str, seed: int = 0) -> torch.nn.Module:
    """Build a 3-layer, hidden-size-32 random model of ``arch`` in eval mode."""
    config_class, extra = ARCHITECTURES[arch]
    config = config_class(**{**_COMMON, **extra})
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(config)
    return model.eval()


CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> Any:
    """A character-level fast tokenizer whose ids fit the tiny models' vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<user>", "<assistant>", "<system>", "<tool>"]
    chars = [chr(c) for c in range(32, 127)][: VOCAB - len(specials)]
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=specials[4:],
    )
    tokenizer.chat_template = chat_template
    return tokenizer
