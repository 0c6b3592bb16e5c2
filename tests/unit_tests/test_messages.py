import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from tiny_models import tiny_tokenizer

from langchain_steer.messages import render_prompt, to_chat_dicts

STRICT_TEMPLATE = (  # like Gemma: no system role, strict alternation
    "{% for m in messages %}"
    "{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('bad role') }}{% endif %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('alternate') }}{% endif %}"
    "<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
DROPPING_TEMPLATE = (  # accepts a system turn but silently drops it
    "{% for m in messages %}{% if m['role'] != 'system' %}<{{ m['role'] }}>{{ m['content'] }}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


def test_native_roles_when_the_template_takes_them(tokenizer):
    text = render_prompt(tokenizer, [SystemMessage("be brief"), HumanMessage("hi")])
    assert text == "<system>be brief</s><user>hi</s><assistant>"


@pytest.mark.parametrize("template", [STRICT_TEMPLATE, DROPPING_TEMPLATE])
def test_system_is_merged_into_the_first_user_turn(template):
    text = render_prompt(tiny_tokenizer(template), [SystemMessage("be brief"), HumanMessage("hi")])
    assert text == "<user>be brief\n\nhi</s><assistant>"


def test_consecutive_roles_and_tool_results_under_a_strict_template():
    messages = [
        HumanMessage("a"),
        HumanMessage("b"),
        AIMessage("", tool_calls=[{"name": "add", "args": {"x": 1}, "id": "c1"}]),
        ToolMessage("2", tool_call_id="c1", name="add"),
        HumanMessage("thanks"),
    ]
    text = render_prompt(tiny_tokenizer(STRICT_TEMPLATE), messages)
    assert text == (
        '<user>a\n\nb</s><assistant><tool_call>{"name": "add", "arguments": {"x": 1}}</tool_call></s>'
        "<user>Result of add (call c1):\n2\n\nthanks</s><assistant>"
    )


def test_base_model_without_template():
    text = render_prompt(tiny_tokenizer(None), [SystemMessage("s"), HumanMessage("hi")])
    assert text == "System: s\nUser: hi\nAssistant:"  # the same transcript generation and extraction use


def test_bad_input():
    with pytest.raises(ValueError, match="at least one message"):
        to_chat_dicts([])
    with pytest.raises(ValueError, match="image"):
        to_chat_dicts([HumanMessage([{"type": "image", "url": "x"}])])
    assert to_chat_dicts([HumanMessage([{"type": "text", "text": "a"}, "b"])])[0]["content"] == "ab"


def test_one_plain_transcript_for_chat_generation_and_extraction():
    """Without a chat template, the chat model, generate_batch and extraction render the same prefix."""
    from langchain_steer.dimensions import Example
    from langchain_steer.prompts import render_chat, render_example

    plain = tiny_tokenizer(None)
    turns = [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    chat = render_prompt(plain, [SystemMessage("s"), HumanMessage("hi")])
    assert chat == render_chat(plain, turns)
    ids, start = render_example(plain, Example("hi", "yo"), system="s")
    assert ids[:start] == plain(chat)["input_ids"] and plain.decode(ids[start:]) == " yo"
