"""SteeredChatModel mechanics on a tiny random Llama (greedy decoding of random weights)."""

import asyncio

import pytest
from helpers import hook_count, random_vector, run_in_threads
from langchain_core.messages import AIMessage, HumanMessage

from langchain_steer import SteeredChatModel
from langchain_steer.models import load_model, model_lock


@pytest.fixture(scope="module")
def vectors(tiny_path):
    model, _ = load_model(tiny_path)
    return {
        "cost": random_vector(model, "cost", layers=(0, 1, 2), seed=1, functional_range=8.0),
        "age": random_vector(model, "age", layers=(1,), seed=2, functional_range=8.0),
    }


@pytest.fixture
def llm(tiny_path, vectors):
    return SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=12)


def test_constructor_loads_nothing(tiny_path):
    SteeredChatModel(model="/nonexistent/model")  # lazy: no error until first use


def test_invoke_reports_usage_and_steering(llm):
    message = llm.invoke("hello", steering={"cost": 0.5})
    assert isinstance(message, AIMessage) and message.content
    usage = message.usage_metadata
    assert (
        usage["output_tokens"] > 0
        and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    )
    assert message.response_metadata["steering"] == {"cost": 0.5}
    assert message.response_metadata["model_name"] == llm.model


def test_per_call_steering_overrides_defaults(tiny_path, vectors):
    llm = SteeredChatModel(
        model=tiny_path, vectors=vectors, max_tokens=12, steering={"cost": 1.0, "age": 0.5}
    )
    applied = llm.invoke("hi", steering={"cost": -1.0}).response_metadata["steering"]
    assert applied == {"cost": -1.0, "age": 0.5}
    assert llm.bind(steering={"age": 0}).invoke("hi").response_metadata["steering"] == {
        "cost": 1.0,
        "age": 0,
    }


def test_steering_changes_the_reply_and_zero_does_not(llm):
    plain = llm.invoke("hello").content
    assert llm.invoke("hello", steering={"cost": 0.0}).content == plain
    steered = {llm.invoke("hello", steering={"cost": s}).content for s in (-1.0, 1.0)}
    assert steered != {plain}


def test_stream_aggregates_to_invoke(llm):
    chunks = list(llm.stream("hello", steering={"age": 0.7}))
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.content == llm.invoke("hello", steering={"age": 0.7}).content


def test_stop_sequence_cuts_before_the_stop(llm):
    full = llm.invoke("hello").content
    assert len(full) >= 6
    stop = full[3:5]
    cut = llm.invoke("hello", stop=[stop]).content
    assert cut == full[: full.index(stop)]
    streamed = "".join(c.content for c in llm.stream("hello", stop=[stop]))
    assert streamed == cut


def test_callbacks_receive_tokens(llm):
    from langchain_core.callbacks import BaseCallbackHandler

    class Collect(BaseCallbackHandler):
        def __init__(self):
            self.tokens = []

        def on_llm_new_token(self, token, **kwargs):
            self.tokens.append(token)

    handler = Collect()
    message = llm.invoke("hello", config={"callbacks": [handler]})
    assert "".join(handler.tokens) == message.content


@pytest.mark.parametrize(
    "call, match",
    [
        (dict(steering={"price": 0.5}), "Unknown steering dimension 'price'"),
        (dict(steering={"cost": float("nan")}), "finite"),
        (dict(steering={"cost": 5}), "allowed range"),
        (dict(max_tokens=10**6), "max_tokens"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_p=0), "top_p"),
    ],
)
def test_bad_input_is_a_clear_error_and_the_model_survives(llm, call, match):
    with pytest.raises(ValueError, match=match):
        llm.invoke("hello", **call)
    assert llm.invoke("hello").content
    model, _ = load_model(llm.model)
    assert hook_count(model) == 0


def test_empty_messages_and_bad_fields(llm, tiny_path):
    with pytest.raises(ValueError, match="at least one message"):
        llm.invoke([])
    with pytest.raises(ValueError, match="max_tokens"):
        SteeredChatModel(model=tiny_path, max_tokens=0)
    with pytest.raises(ValueError, match="finite"):
        SteeredChatModel(model=tiny_path, steering={"cost": float("inf")})
    assert llm.invoke("hello").content


def test_uncompilable_tool_schema_is_a_clear_error(llm):
    broken = {
        "title": "broken",
        "description": "x",
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/missing"}},
        "required": ["a"],
    }
    with pytest.raises(ValueError, match="broken"):
        llm.bind_tools([broken], tool_choice="any").invoke("hi")
    assert llm.invoke("hello").content


def test_forced_tool_call_always_parses(llm):
    def add(x: int, y: int) -> int:
        """Add two integers."""
        return x + y

    message = llm.bind_tools([add], tool_choice="any").invoke("add 2 and 3", max_tokens=150)
    [call] = message.tool_calls
    assert call["name"] == "add" and set(call["args"]) == {"x", "y"} and call["id"]
    assert all(isinstance(v, int) for v in call["args"].values())
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_tool_choice_forms(llm):
    def ping() -> str:
        """Ping."""
        return "pong"

    for choice in ("ping", {"type": "function", "function": {"name": "ping"}}, True, "required"):
        assert llm.bind_tools([ping], tool_choice=choice).invoke("x", max_tokens=150).tool_calls
    with pytest.raises(ValueError, match="tool_choice"):
        llm.bind_tools([ping], tool_choice="pong")


def test_structured_output_matches_the_schema(tiny_path, vectors):
    from pydantic import BaseModel

    llm = SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=200)

    class Point(BaseModel):
        x: int
        label: str

    result = llm.with_structured_output(Point).invoke("a point")
    assert isinstance(result, Point)
    raw = llm.with_structured_output(Point, method="function_calling", include_raw=True).invoke(
        "a point"
    )
    assert isinstance(raw["parsed"], Point) and raw["parsing_error"] is None
    as_dict = llm.with_structured_output(Point.model_json_schema()).invoke("p")
    assert set(as_dict) == {"x", "label"}


def test_threads_get_their_solo_outputs(llm):
    strengths = [{"cost": (i % 5 - 2) / 2, "age": (i % 3 - 1) / 2} for i in range(16)]
    solo = [llm.invoke("hello", steering=s).content for s in strengths]
    results = [None] * 16

    def run(i):
        results[i] = llm.invoke("hello", steering=strengths[i]).content

    run_in_threads(run, 16)
    assert results == solo
    assert len(set(solo)) > 1


async def test_tasks_get_their_solo_outputs(llm):
    strengths = [{"cost": (i % 5 - 2) / 2} for i in range(16)]
    solo = [llm.invoke("hello", steering=s).content for s in strengths]
    results = await asyncio.gather(*(llm.ainvoke("hello", steering=s) for s in strengths))
    assert [r.content for r in results] == solo
    assert [r.content for r in await llm.abatch(["hello"] * 3, steering={"cost": 1})] == [
        solo[4]
    ] * 3


async def test_cancelled_stream_releases_model_and_hooks(llm):
    model, _ = load_model(llm.model)

    async def consume():
        async for _ in llm.astream("hello", steering={"cost": 1.0}, max_tokens=200):
            await asyncio.sleep(0.01)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The abandoned stream is closed by the event loop's async-generator finaliser, which cancels the
    # row (it leaves the batch, whose hooks then go) within a few loop iterations.
    for _ in range(200):
        if hook_count(model) == 0:
            break
        await asyncio.sleep(0.05)
    assert hook_count(model) == 0
    assert model_lock(model).acquire(timeout=5)
    model_lock(model).release()
    assert (await llm.ainvoke("hello")).content


def test_closing_a_stream_early_removes_hooks(llm):
    model, _ = load_model(llm.model)
    stream = llm.stream("hello", steering={"cost": 1.0}, max_tokens=100)
    next(stream)
    stream.close()
    assert hook_count(model) == 0
    assert llm.invoke([HumanMessage("hello")]).content


def test_ls_params(llm):
    params = llm._get_ls_params(model="other")
    assert params["ls_provider"] == "langchain-steer" and params["ls_model_name"] == "other"


def test_configurable_steering(llm):
    from langchain_core.runnables import ConfigurableField

    configurable = llm.configurable_fields(steering=ConfigurableField(id="steering"))
    message = configurable.invoke("hello", config={"configurable": {"steering": {"age": -0.5}}})
    assert message.response_metadata["steering"] == {"age": -0.5}
    assert message.content == llm.invoke("hello", steering={"age": -0.5}).content


def test_tool_choice_none_and_auto_return_text(llm):
    def ping() -> str:
        """Ping."""
        return "pong"

    for choice in ("none", "auto"):
        message = llm.bind_tools([ping], tool_choice=choice).invoke("hello")
        assert not message.tool_calls and message.content


def test_reply_repetition_penalty_spares_the_prompt():
    import torch

    from langchain_steer.tools import ReplyRepetitionPenalty

    ids = torch.tensor([[5, 6, 7, 8]])  # prompt 5, 6; reply 7, 8
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, -2.0, 1.0]])
    out = ReplyRepetitionPenalty(prompt_length=2, penalty=2.0)(ids, scores.clone())
    assert out[0, 5] == 2.0 and out[0, 6] == 2.0  # prompt tokens untouched
    assert out[0, 7] == 1.0 and out[0, 8] == -4.0  # reply tokens pushed down either way


def test_a_corrupt_shipped_vector_file_is_that_error(tmp_path, monkeypatch):
    import importlib.resources

    import langchain_steer.dimensions as dimensions

    shipped = tmp_path / "vectors" / "demo"
    shipped.mkdir(parents=True)
    (shipped / "cost.safetensors").write_bytes(b"not a safetensors file")

    class Files:
        files = staticmethod(lambda package: tmp_path)
        as_file = staticmethod(importlib.resources.as_file)

    monkeypatch.setattr(dimensions, "resources", Files)
    # Before, the user saw "Unknown steering dimension 'cost'; known: none" instead.
    with pytest.raises(ValueError, match="cost.safetensors is not a readable safetensors file"):
        SteeredChatModel(model="demo").steering_dimensions()
    # A model with no shipped vectors still means "no vectors", not an error.
    assert SteeredChatModel(model="some/other-model").steering_dimensions() == []


def test_llm_cache_keys_on_the_vectors_and_every_setting_that_changes_a_reply(tiny_path, vectors):
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import set_llm_cache

    model, _ = load_model(tiny_path)
    other = {"cost": random_vector(model, "cost", layers=(0, 1, 2), seed=7, functional_range=8.0)}
    first = SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=12, steering={"cost": 1.0})
    second = SteeredChatModel(model=tiny_path, vectors=other, max_tokens=12, steering={"cost": 1.0})
    uncached = second.invoke("hello").content
    assert uncached != first.invoke("hello").content  # the vectors do change the reply
    set_llm_cache(InMemoryCache())
    try:
        first.invoke("hello")
        assert second.invoke("hello").content == uncached  # not the first model's cache entry
    finally:
        set_llm_cache(None)
    params = first._identifying_params
    for changed in (
        {"seed": 3},
        {"repetition_penalty": 1.2},
        {"device": "cpu"},
        {"dtype": "float32"},
        {"layer_path": "model.layers"},
    ):
        variant = SteeredChatModel(
            model=tiny_path, vectors=vectors, max_tokens=12, steering={"cost": 1.0}, **changed
        )
        assert variant._identifying_params != params, changed
    same = SteeredChatModel(model=tiny_path, vectors=dict(vectors), max_tokens=12, steering={"cost": 1.0})
    assert same._identifying_params == params  # equal vectors, equal key: the cache still hits


def test_layer_path_reaches_the_batched_decoder(tiny_path, vectors):
    explicit = SteeredChatModel(
        model=tiny_path, vectors=vectors, max_tokens=12, layer_path="model.layers"
    )
    found = SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=12)
    assert (
        explicit.invoke("hi", steering={"cost": 1.0}).content
        == found.invoke("hi", steering={"cost": 1.0}).content
    )
    wrong = SteeredChatModel(model=tiny_path, vectors=vectors, max_tokens=12, layer_path="model.nope")
    with pytest.raises(ValueError, match="model.nope"):
        wrong.invoke("hi", steering={"cost": 1.0})


def test_the_chat_model_refuses_a_foreign_vector_unless_told_to_use_it(tiny_path, vectors):
    import dataclasses

    from langchain_steer.passport import ForeignVectorError, Passport

    model, tokenizer = load_model(tiny_path)
    passport = dataclasses.replace(Passport.of(model, tokenizer), architecture="mistral")
    foreign = {"cost": dataclasses.replace(vectors["cost"], passport=passport)}
    llm = SteeredChatModel(model=tiny_path, vectors=foreign, max_tokens=4)
    with pytest.raises(ForeignVectorError, match="architecture 'mistral' vs 'llama'"):
        llm.invoke("hi", steering={"cost": 1.0})
    assert llm.invoke("hi").content  # unsteered calls do not use the vector
    lenient = SteeredChatModel(
        model=tiny_path, vectors=foreign, max_tokens=4, allow_foreign_vectors=True
    )
    with pytest.warns(UserWarning, match="Using it anyway"):
        assert lenient.invoke("hi", steering={"cost": 1.0}).content
