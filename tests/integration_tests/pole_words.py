"""Score how likely a steered model is to use a pole's words: the measure behind several tests."""

import torch

from langchain_steer import steer
from langchain_steer.generate import apply_chat_template

# A neutral start of a reply, so that the next word is where a preference shows.
REPLY_PREFIX = "Sure! I recommend"


@torch.no_grad()
def mean_word_logprob(model, tokenizer, vectors, strengths, prompts, words, prefix=REPLY_PREFIX):
    """Mean over prompts and words of log P(" word" | chat prompt + reply prefix), steered."""
    rows, spans = [], []
    for prompt in prompts:
        context = apply_chat_template(tokenizer, [{"role": "user", "content": prompt}]) + prefix
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        for word in words:
            word_ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            rows.append(context_ids + word_ids)
            spans.append((len(context_ids), len(context_ids) + len(word_ids)))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with steer(model, vectors, strengths):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1)
    total = 0.0
    for i, (start, end) in enumerate(spans):
        targets = ids[i, start:end]
        total += float(logprobs[i, start - 1 : end - 1].gather(-1, targets[:, None]).sum())
    return total / len(rows)
