"""``SteeredChatModel(engine="vllm")``: per-request steering in vLLM, against vLLM itself and our HF engine.

All greedy, float32, the demo model. "Solo" means the request alone in the engine.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from langchain_steer.dimensions import everyday_requests

PROMPT = "Plan a dinner for Saturday."
STEERINGS = [
    {},
    {"cost": -1.0},
    {"cost": 1.0},
    {"age": -1.0},
    {"time": 1.0},
    {"culture": -0.8},
    {"ambiance": 1.0},
    {"cost": -0.5, "age": 0.5, "time": -0.5},
]


def test_strength_zero_and_no_steering_are_exactly_plain_vllm(vllm_llm, plain_vllm):
    plain = plain_vllm.invoke(PROMPT).content
    assert vllm_llm.invoke(PROMPT).content == plain
    assert vllm_llm.invoke(PROMPT, steering={"cost": 0.0, "age": 0.0}).content == plain
    # And steering does act: otherwise the equalities above prove nothing.
    assert vllm_llm.invoke(PROMPT, steering={"cost": -1.0}).content != plain


def test_eight_steerings_in_one_batch_each_equal_their_solo_reply(vllm_llm, plain_vllm):
    solo = [vllm_llm.invoke(PROMPT, steering=s).content for s in STEERINGS]
    assert len(set(solo)) >= 6, "the steerings should mostly give different replies"

    async def together() -> list[str]:
        replies = await asyncio.gather(*(vllm_llm.ainvoke(PROMPT, steering=s) for s in STEERINGS))
        return [r.content for r in replies]

    assert asyncio.run(together()) == solo
    batched = [m.content for m in vllm_llm.batch([PROMPT] * len(STEERINGS), steering=STEERINGS)]
    assert batched == solo
    # The unsteered request in the steered batch is plain vLLM's reply.
    assert batched[0] == plain_vllm.invoke(PROMPT).content


def _agreement(tokenizer, a: str, b: str) -> tuple[int, int]:
    """Position-wise equal tokens of two replies, over the longer one's length."""
    x, y = tokenizer.encode(a, add_special_tokens=False), tokenizer.encode(b, add_special_tokens=False)
    same = sum(1 for i, j in zip(x, y, strict=False) if i == j)
    return same, max(len(x), len(y), 1)


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_steered_replies_match_the_hf_engine(vllm_llm, hf_llm, positions, record_property):
    prompts = everyday_requests("final")[:6]
    cases = [(p, s) for p in prompts for s in STEERINGS[1:5]]
    vllm_model = vllm_llm.model_copy(update={"positions": positions})
    hf_model = hf_llm.model_copy(update={"positions": positions})
    ours = vllm_model.batch([p for p, _ in cases], steering=[s for _, s in cases])
    theirs = hf_model.batch([p for p, _ in cases], steering=[s for _, s in cases])
    tokenizer = vllm_llm._load()[1]
    counts = [_agreement(tokenizer, a.content, b.content) for a, b in zip(ours, theirs, strict=True)]
    agreement = sum(s for s, _ in counts) / sum(n for _, n in counts)
    identical = sum(a.content == b.content for a, b in zip(ours, theirs, strict=True))
    record_property("token_agreement", agreement)
    print(f"\n[{positions}] vLLM vs HF: {identical}/{len(cases)} identical replies, "
          f"{agreement:.1%} of tokens agree")  # fmt: skip
    assert agreement >= 0.95
    # Where the replies are the same, so is the usage accounting (EOS counted alike).
    for a, b in zip(ours, theirs, strict=True):
        if a.content == b.content:
            assert a.usage_metadata == b.usage_metadata


def test_the_prefix_cache_never_crosses_steerings(vllm_llm):
    # A long shared prompt: many full KV blocks that a cache could hand from one user to another.
    long_prompt = " ".join(everyday_requests("final")[:12]) + " Now: " + PROMPT
    users = [{"cost": -1.0}, {"cost": 1.0}, {}]
    engine = vllm_llm.batcher()

    def solo(steering):
        assert engine.reset_prefix_cache()
        return vllm_llm.invoke(long_prompt, steering=steering).content

    alone = [solo(s) for s in users]
    assert len(set(alone)) == 3, "the test needs steering to change the reply"
    assert engine.reset_prefix_cache()
    # Warm the cache with every user's prompt blocks, then ask again in every order.
    for order in (users, users[::-1], [users[2], users[0], users[2], users[1]]):
        for steering in order:
            assert vllm_llm.invoke(long_prompt, steering=steering).content == alone[users.index(steering)]
    # Concurrently too: two users with the same long prompt in one batch.
    both = vllm_llm.batch([long_prompt, long_prompt], steering=[users[0], users[1]])
    assert [m.content for m in both] == alone[:2]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"steering": {"cots": 1.0}}, ValueError),
        ({"steering": {"cost": math.nan}}, ValueError),
        ({"steering": {"cost": 3.0}}, ValueError),
        ({"steering": {"cost": "high"}}, ValueError),
        ({"max_tokens": 0}, ValueError),
        ({"max_tokens": 10**6}, ValueError),
        ({"temperature": -1.0}, ValueError),
        ({"seed": "x"}, ValueError),
    ],
)
def test_bad_input_gets_the_hf_engines_error(vllm_llm, hf_llm, kwargs, error):
    with pytest.raises(error) as theirs:
        hf_llm.invoke(PROMPT, **kwargs)
    with pytest.raises(error) as ours:
        vllm_llm.invoke(PROMPT, **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_a_prompt_beyond_the_context_and_a_bad_schema_get_the_hf_engines_error(vllm_llm, hf_llm):
    huge = "word " * 9000
    messages = []
    for llm in (hf_llm, vllm_llm):
        with pytest.raises(ValueError) as caught:
            llm.invoke(huge)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "context" in messages[0]
    bad = {"type": "object", "properties": {"x": {"type": "no-such-type"}}}
    messages = []
    for llm in (hf_llm, vllm_llm):
        with pytest.raises(ValueError) as caught:
            llm.invoke(PROMPT, response_format=bad)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_structured_output_and_forced_tool_calls_through_vllms_grammar(vllm_llm):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "guests": {"type": "integer"}},
        "required": ["city", "guests"],
    }
    reply = vllm_llm.invoke("Dinner in Paris for 4 people. Answer in JSON.", response_format=schema)
    data = json.loads(reply.content)
    assert set(data) == {"city", "guests"} and isinstance(data["guests"], int)
    tool = {
        "type": "function",
        "function": {
            "name": "book_table",
            "description": "Book a table",
            "parameters": {
                "type": "object",
                "properties": {"people": {"type": "integer"}},
                "required": ["people"],
            },
        },
    }
    called = vllm_llm.bind_tools([tool], tool_choice="book_table").invoke("Book a table for 2.")
    assert called.tool_calls and called.tool_calls[0]["name"] == "book_table"
    assert isinstance(called.tool_calls[0]["args"]["people"], int)


def test_streaming_delivers_the_reply_in_pieces_with_usage_last(vllm_llm):
    chunks = list(vllm_llm.stream(PROMPT, steering={"cost": -1.0}))
    assert len([c for c in chunks if c.content]) > 3
    assert "".join(str(c.content) for c in chunks) == vllm_llm.invoke(PROMPT, steering={"cost": -1.0}).content
    assert chunks[-1].usage_metadata["output_tokens"] > 0


def test_a_closed_stream_cancels_its_request(vllm_llm):
    engine = vllm_llm.batcher()
    before = engine.stats.cancelled
    stream = vllm_llm.stream(PROMPT, max_tokens=200)
    next(stream)
    stream.close()
    assert engine.stats.cancelled == before + 1
    assert engine.pending == 0
