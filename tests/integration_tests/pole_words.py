"""Score how likely a steered model is to use a pole's words: the measure behind several tests."""

import torch

from langchain_steer import steer
from langchain_steer.prompts import render_chat

# A neutral start of a reply, so that the next word is where a preference shows.
REPLY_PREFIX = "Sure! I recommend"


@torch.no_grad()
def word_logprobs(model, tokenizer, context, words):
    """log P(" word" | context) for each word: one pass over the context, then all words at once."""
    context_ids = torch.tensor([tokenizer(context, add_special_tokens=False)["input_ids"]])
    out = model(input_ids=context_ids, use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    pieces = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
    width = max(len(p) for p in pieces)
    ids = torch.full((len(words), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(words), context_ids.shape[1] + width), dtype=torch.long)
    mask[:, : context_ids.shape[1]] = 1
    for i, piece in enumerate(pieces):
        ids[i, : len(piece)] = torch.tensor(piece)
        mask[i, context_ids.shape[1] : context_ids.shape[1] + len(piece)] = 1
    cache = out.past_key_values
    cache.batch_repeat_interleave(len(words))
    rest = torch.log_softmax(
        model(input_ids=ids, attention_mask=mask, cache=cache).logits.float(), -1
    )
    scores = []
    for i, piece in enumerate(pieces):
        total = first[piece[0]]
        for j in range(1, len(piece)):
            total = total + rest[i, j - 1, piece[j]]
        scores.append(float(total))
    return scores


def mean_word_logprob(model, tokenizer, vectors, strengths, prompts, words, prefix=REPLY_PREFIX):
    """Mean over prompts and words of log P(" word" | chat prompt + reply prefix), steered."""
    values = []
    with steer(model, vectors, strengths):
        for prompt in prompts:
            context = render_chat(tokenizer, [{"role": "user", "content": prompt}]) + prefix
            values.extend(word_logprobs(model, tokenizer, context, words))
    return sum(values) / len(values)
