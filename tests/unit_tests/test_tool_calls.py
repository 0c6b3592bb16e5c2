"""Tool calls under tool_choice="auto": the native <tool_call> form, its grammar, and streaming around it."""

import pytest
from tiny_models import tiny_tokenizer

from langchain_steer import SteeredChatModel
from langchain_steer.tools import CallGuard, compile_auto_tool_calls, split_tool_calls

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_the_guard_streams_text_and_keeps_a_call_back():
    guard = CallGuard()
    shown = [guard.feed(piece) for piece in ["Sure, ", "let me check. <to", "ol_call>{\"name\"", "...}"]]
    assert shown == ["Sure, ", "let me check. ", "", ""] and guard.in_call
    assert guard.close() == ""
    plain = CallGuard()
    assert plain.feed("a <to") == "a " and plain.feed("day") == "<today"  # not a call after all
    assert plain.feed(" ends <") == " ends " and plain.close() == "<"


def test_split_reads_tagged_calls_and_keeps_the_rest():
    text = 'Checking. <tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
    rest, calls = split_tool_calls(text, TOOLS)
    assert rest == "Checking." and [(c["name"], c["args"]) for c in calls] == [
        ("get_weather", {"city": "Oslo"})
    ]
    unknown = 'x <tool_call>{"name": "other", "arguments": {}}</tool_call>'
    assert split_tool_calls(unknown, TOOLS) == (unknown, [])


def test_the_grammar_constrains_the_reply_from_the_point_a_call_starts(llama):
    import xgrammar as xgr

    tokenizer = tiny_tokenizer()
    compiled = compile_auto_tool_calls(tokenizer, llama.config.vocab_size, TOOLS)
    ids = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in "hi <tool_cal>{x\"n"}

    def matcher_after(text):
        matcher = xgr.GrammarMatcher(compiled)
        for ch in text:
            assert matcher.accept_token(ids[ch]), (text, ch)
        return matcher

    free = matcher_after("hi ")
    assert free.accept_token(ids["x"])  # free text: anything goes
    started = matcher_after("hi <tool_call>")
    assert not started.accept_token(ids["x"])  # inside the call: only the call's JSON
    assert started.accept_token(ids["{"])
    assert not started.accept_token(ids["x"]) and started.accept_token(ids['"'])


def test_auto_streams_text_instead_of_buffering_the_whole_reply(tiny_path):
    llm = SteeredChatModel(model=tiny_path, vectors={}, max_tokens=12)
    bound = llm.bind_tools(TOOLS, tool_choice="auto")
    chunks = [c for c in bound.stream("hello") if c.content]
    assert len(chunks) > 1  # text arrives while it is generated, not only at the end
    message = bound.invoke("hello")
    assert message.content == "".join(c.content for c in chunks) and not message.tool_calls


@pytest.mark.parametrize("choice", ["any", "get_weather"])
def test_forced_calls_are_unchanged(tiny_path, choice):
    llm = SteeredChatModel(model=tiny_path, vectors={}, max_tokens=60)
    message = llm.bind_tools(TOOLS, tool_choice=choice).invoke("weather in Oslo?")
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
