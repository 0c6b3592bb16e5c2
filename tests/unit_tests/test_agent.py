"""Preference agent mechanics: the update rule, the graph in its three modes, persistence, on a tiny model.

The LEARN tests here use a small keyword inferencer so that they check the graph, not the classifier; the
default inferencer is measured on the development set and tested on the demo model in the integration tests.
"""

import json
from pathlib import Path

import pytest
from helpers import random_vector
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore
from langgraph.types import Command
from tiny_models import tiny_model, tiny_tokenizer

from langchain_steer import SteeredChatModel
from langchain_steer.agent import (
    AgentContext,
    Reading,
    build_preference_agent,
    infer_preferences,
    preference_namespace,
    update_preferences,
)
from langchain_steer.agent.accuracy import evaluate_inferencer
from langchain_steer.agent.nodes import latest_turns
from langchain_steer.agent.persistence import SqlitePersistence
from langchain_steer.dimensions import DIMENSIONS
from langchain_steer.models import clear_model_cache, load_model

CUES = {
    "cheap": ("cost", -1.0),
    "splurge": ("cost", 1.0),
    "toddler": ("age", -1.0),
    "brunch": ("time", 1.0),
}


class KeywordInferencer:
    """A tiny, transparent inferencer: one cue word per pole; "cheaper" is feedback."""

    def __init__(self):
        self.calls = 0

    def read(self, messages):
        readings = []
        for message in messages:
            if message.type != "human":
                continue
            self.calls += 1
            text = message.content.lower()
            values = {name: sign for word, (name, sign) in CUES.items() if word in text}
            if "cheaper" in text:
                readings.append(Reading(values={"cost": -1.0}, feedback=True))
            elif "whatever it costs" in text:
                readings.append(Reading(cleared=frozenset({"cost"})))
            else:
                readings.append(Reading(values=values))
        return readings


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-agent")
    tiny_model("llama", seed=7).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    model, _ = load_model(str(folder))
    vectors = {
        name: random_vector(model, name, layers=(1,), seed=i, functional_range=0.2)
        for i, name in enumerate(DIMENSIONS)
    }
    yield SteeredChatModel(model=str(folder), vectors=vectors, max_tokens=6)
    clear_model_cache()


def _config(thread="t1"):
    return {"configurable": {"thread_id": thread}}


# -- the update rule ----------------------------------------------------------------------------------
def test_a_clear_statement_replaces_the_old_value():
    assert update_preferences({"cost": -1.0}, Reading(values={"cost": 0.9}))["cost"] == 0.9


def test_a_hesitant_statement_moves_part_of_the_way():
    # confidence 0.3 / 0.6 = 0.5: halfway from -1 to 0.3
    assert update_preferences({"cost": -1.0}, Reading(values={"cost": 0.3}))[
        "cost"
    ] == pytest.approx(-0.35)


def test_nothing_expressed_leaves_values_alone():
    current = {"cost": -0.8, "age": 0.5}
    updated = update_preferences(current, Reading(values={"cost": 0.1, "time": -0.19}))
    assert updated == {"cost": -0.8, "ambiance": 0.0, "age": 0.5, "time": 0.0, "culture": 0.0}


def test_feedback_steps_in_the_asked_direction():
    luxury = {"cost": 1.0}
    once = update_preferences(luxury, Reading(values={"cost": -0.9}, feedback=True))
    twice = update_preferences(once, Reading(values={"cost": -0.9}, feedback=True))
    assert once["cost"] == -0.5 and twice["cost"] == -1.0
    assert (
        update_preferences({"cost": -0.5}, Reading(values={"cost": 0.8}, feedback=True))["cost"]
        == 0.5
    )


def test_clearing_resets_to_zero():
    assert update_preferences({"cost": 1.0}, Reading(cleared=frozenset({"cost"})))["cost"] == 0.0


def test_infer_preferences_folds_every_user_turn():
    inferencer = KeywordInferencer()
    conversation = [
        "Anything cheap around here?",
        AIMessage("Try the noodle bar."),
        HumanMessage("Actually let's splurge, and we have a toddler."),
    ]
    result = infer_preferences(conversation, inferencer=inferencer)
    assert result == {"cost": 1.0, "ambiance": 0.0, "age": -1.0, "time": 0.0, "culture": 0.0}
    assert infer_preferences(["hello"], ["cost", "age"], inferencer=inferencer) == {
        "cost": 0.0,
        "age": 0.0,
    }
    with pytest.raises(TypeError, match="messages or strings"):
        infer_preferences([42], inferencer=inferencer)


def test_latest_turns_start_at_the_last_reply():
    messages = [HumanMessage("a"), AIMessage("b"), HumanMessage("c"), HumanMessage("d")]
    assert [m.content for m in latest_turns(messages)] == ["b", "c", "d"]
    assert [m.content for m in latest_turns(messages[:1])] == ["a"]


def test_accuracy_bars_on_a_labelled_conversation():
    conversations = [
        {
            "id": "x",
            "turns": [
                {"role": "user", "content": "something cheap"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "we'd like brunch"},
            ],
            "expected": [
                {"cost": -1, "ambiance": 0, "age": 0, "time": 0, "culture": 0},
                {"cost": -1, "ambiance": 0, "age": 0, "time": 1, "culture": 0},
            ],
        }
    ]
    result = evaluate_inferencer(conversations, KeywordInferencer())
    assert result["expressed"] == {"accuracy": 1.0, "n": 3}
    assert result["not_expressed"] == {"accuracy": 1.0, "n": 7}
    conversations[0]["expected"][1]["age"] = -1
    assert evaluate_inferencer(conversations, KeywordInferencer())["expressed"]["accuracy"] == 0.75


# -- the graph ------------------------------------------------------------------------------------------
def test_learn_mode_updates_state_store_and_reply(tiny_llm):
    store = InMemoryStore()
    inferencer = KeywordInferencer()
    agent = build_preference_agent(
        tiny_llm, inferencer=inferencer, checkpointer=InMemorySaver(), store=store
    )
    context = AgentContext(user_id="ana")
    first = agent.invoke(
        {"messages": [("user", "something cheap please")]}, _config(), context=context
    )
    assert first["preferences"]["cost"] == -1.0
    assert first["applied"] == {"cost": -1.0}
    assert first["messages"][-1].response_metadata["steering"] == {"cost": -1.0}
    second = agent.invoke({"messages": [("user", "no, cheaper!")]}, _config(), context=context)
    assert second["preferences"]["cost"] == -1.0  # feedback from -1 stays at the end of the range
    third = agent.invoke({"messages": [("user", "let's splurge")]}, _config(), context=context)
    assert third["preferences"]["cost"] == 1.0
    assert inferencer.calls == 3  # only the newest user turn is read each time
    stored = store.get(preference_namespace("ana"), "current").value["preferences"]
    assert stored["cost"] == 1.0
    # a new thread of the same user starts from the stored preferences
    fresh = agent.invoke({"messages": [("user", "hi")]}, _config("t2"), context=context)
    assert fresh["preferences"]["cost"] == 1.0
    other = agent.invoke(
        {"messages": [("user", "hi")]}, _config("t3"), context=AgentContext(user_id="bo")
    )
    assert other["preferences"]["cost"] == 0.0


def test_select_mode_uses_context_strengths_without_inference(tiny_llm):
    inferencer = KeywordInferencer()
    agent = build_preference_agent(
        tiny_llm, mode="select", inferencer=inferencer, checkpointer=InMemorySaver()
    )
    result = agent.invoke(
        {"messages": [("user", "something cheap")]},
        _config(),
        context=AgentContext(strengths={"age": 0.5, "time": -2.0}),
    )
    assert inferencer.calls == 0
    assert result["preferences"]["cost"] == 0.0
    assert result["applied"] == {"age": 0.5, "time": -1.0}  # clipped to the fluent range
    updated = agent.invoke(
        {"messages": [("user", "hi")], "preferences": {"culture": -1}}, _config()
    )
    assert updated["applied"] == {"age": 0.5, "time": -1.0, "culture": -1.0}
    with pytest.raises(ValueError, match="finite number"):
        agent.invoke(
            {"messages": [("user", "x")]},
            _config("t9"),
            context=AgentContext(strengths={"age": "hi"}),
        )
    # A misspelt dimension is an error that lists the known ones, not a strength that steers nothing.
    with pytest.raises(ValueError, match="Unknown preference dimension 'cots'; known: cost"):
        agent.invoke(
            {"messages": [("user", "x")]},
            _config("t10"),
            context=AgentContext(strengths={"cots": 1.0}),
        )
    with pytest.raises(ValueError, match="Unknown preference dimension 'agee'"):
        agent.invoke({"messages": [("user", "x")], "preferences": {"agee": 1}}, _config("t11"))


def test_calibrate_mode_completes_through_interrupt_and_resume(tiny_llm):
    agent = build_preference_agent(
        tiny_llm,
        mode="calibrate",
        dimensions=["cost", "age"],
        calibrate_rounds=2,
        checkpointer=InMemorySaver(),
    )
    config = _config()
    state = agent.invoke({"messages": [("user", "plan my evening")]}, config)
    asked = []
    for choice in ["A", "B", "same", "A"]:
        [pending] = state["__interrupt__"]
        asked.append(
            (pending.value["dimension"], pending.value["round"], pending.value["strengths"])
        )
        assert pending.value["A"] is not None and pending.value["B"] is not None
        state = agent.invoke(Command(resume=choice), config)
    assert "__interrupt__" not in state
    assert asked == [
        ("cost", 1, {"A": -0.5, "B": 0.5}),
        ("cost", 2, {"A": -0.75, "B": -0.25}),  # "A" kept [-1, 0]
        ("age", 1, {"A": -0.5, "B": 0.5}),
        ("age", 2, {"A": -0.25, "B": 0.25}),  # "same" kept [-0.5, 0.5]
    ]
    # cost: A then B -> [-0.5, 0] -> -0.25; age: same then A -> [-0.5, 0] -> -0.25
    assert state["preferences"]["cost"] == -0.25 and state["preferences"]["age"] == -0.25
    assert isinstance(state["messages"][-1], AIMessage)
    # the A/B elicitation's search lives under the state key "elicitation"
    assert state["elicitation"]["done"] and "calibration" not in state
    assert state["elicitation"]["results"] == {"cost": -0.25, "age": -0.25}
    assert {"elicit_prepare", "elicit_ask"} <= set(agent.get_graph().nodes)
    # the elicited strengths hold for the rest of the conversation: no more questions
    later = agent.invoke({"messages": [("user", "and tomorrow?")]}, config)
    assert "__interrupt__" not in later and later["preferences"]["cost"] == -0.25
    with pytest.raises(ValueError, match="'A', 'B' or 'same'"):
        fresh = _config("t2")
        agent.invoke({"messages": [("user", "x")]}, fresh)
        agent.invoke(Command(resume="maybe"), fresh)


def test_sqlite_persistence_across_graph_rebuilds(tiny_llm, tmp_path):
    path = tmp_path / "agent.db"
    with SqlitePersistence(path) as db:
        agent = build_preference_agent(
            tiny_llm, inferencer=KeywordInferencer(), checkpointer=db.checkpointer, store=db.store
        )
        agent.invoke(
            {"messages": [("user", "a cheap brunch")]},
            _config(),
            context=AgentContext(user_id="cy"),
        )
    with SqlitePersistence(path) as db:
        agent = build_preference_agent(
            tiny_llm, inferencer=KeywordInferencer(), checkpointer=db.checkpointer, store=db.store
        )
        state = agent.get_state(_config())
        assert (
            state.values["preferences"]["cost"] == -1.0
            and state.values["preferences"]["time"] == 1.0
        )
        context = AgentContext(user_id="cy")
        new_thread = agent.invoke({"messages": [("user", "hello")]}, _config("t2"), context=context)
        assert new_thread["preferences"]["time"] == 1.0
    with pytest.raises(ValueError, match="file path"):
        SqlitePersistence(":memory:")


def test_bad_arguments_are_clear_errors(tiny_llm):
    with pytest.raises(ValueError, match="mode"):
        build_preference_agent(tiny_llm, mode="guess")
    with pytest.raises(ValueError, match="2 to 4 rounds"):
        build_preference_agent(tiny_llm, mode="calibrate", calibrate_rounds=9)
    with pytest.raises(ValueError, match="distinct"):
        build_preference_agent(tiny_llm, dimensions=["cost", "cost"])
    with pytest.raises(TypeError, match="a model name, a SteeredChatModel or a ChatOpenAI"):
        build_preference_agent(42)


def test_langgraph_json_names_a_graph_that_compiles():
    root = Path(__file__).parents[2]
    spec = json.loads((root / "langgraph.json").read_text())
    module_path, _, attribute = spec["graphs"]["preference_agent"].partition(":")
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("langgraph_entry", root / module_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    graph = getattr(module, attribute)
    assert {"load", "learn", "respond"} <= set(graph.get_graph().nodes)
    assert graph.checkpointer is None  # the platform brings its own


def test_turns_split_into_clauses_at_sentence_ends_and_but():
    from langchain_steer.agent.inference import clauses

    assert clauses("That's the famous one, right? I'd prefer somewhere locals go.") == [
        "That's the famous one, right?",
        "I'd prefer somewhere locals go.",
    ]
    assert clauses("Looks lovely but way too pricey for us") == [
        "Looks lovely",
        "way too pricey for us",
    ]
    assert clauses("Cheap eats please") == []
    assert clauses("ok. thanks!") == []  # one-word pieces are not clauses


def test_dimensions_without_vectors_fail_at_build_time(tiny_llm, tmp_path):
    with pytest.raises(ValueError, match=r"no vector for 'cots'; it can steer: age, ambiance"):
        build_preference_agent(tiny_llm, mode="select", dimensions=["cost", "cots"])
    only_cost = SteeredChatModel(
        model=tiny_llm.model, vectors={"cost": tiny_llm._get_vectors()["cost"]}, max_tokens=2
    )
    with pytest.raises(ValueError, match="no vector for 'age'; it can steer: cost"):
        build_preference_agent(only_cost, mode="select", dimensions=["cost", "age"])
    # By default, every dimension the model can steer.
    agent = build_preference_agent(only_cost, mode="select", checkpointer=InMemorySaver())
    result = agent.invoke({"messages": [("user", "hi")], "preferences": {"cost": 1}}, _config("b1"))
    assert result["preferences"] == {"cost": 1.0}


def test_explain_learning_says_which_words_moved_which_value():
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_steer.agent.inference import default_inferencer
    from langchain_steer.agent.nodes import PreferenceChange, explain_learning, learn_preferences

    turn = "We're on a tight budget and bringing our toddler"
    learned, changes = explain_learning(default_inferencer(), [HumanMessage(turn)], {}, DIMENSIONS)
    assert learned == learn_preferences(default_inferencer(), [HumanMessage(turn)], {}, DIMENSIONS)
    moved = {change.dimension: change for change in changes}
    assert set(moved) >= {"cost", "age"}
    assert moved["cost"].after < 0 and moved["age"].after < 0
    assert moved["cost"].before == 0.0 and moved["cost"].because == turn
    # Nothing moves that the turn did not move, and only the newest turns are read again.
    again, none = explain_learning(
        default_inferencer(), [HumanMessage(turn), AIMessage("Sure."), HumanMessage("Thanks!")], learned,
        DIMENSIONS,
    )  # fmt: skip
    assert again == learned and none == []
    cleared = explain_learning(
        KeywordInferencer(), [HumanMessage("whatever it costs")], {"cost": -0.8}, DIMENSIONS
    )[1]
    assert cleared == [PreferenceChange("cost", -0.8, 0.0, "")]



def test_the_llm_inferencer_rates_a_custom_dimension_on_its_named_poles():
    from langchain_steer import SteeredChatModel
    from langchain_steer.agent import LLMInferencer

    llm = SteeredChatModel(model="demo")  # loads nothing: only the schema is built here
    with pytest.raises(ValueError, match="poles of the custom dimension 'health'"):
        LLMInferencer(llm, dimensions=["cost", "health"])
    reader = LLMInferencer(llm, dimensions=["cost", "health"], poles={"health": ("indulgent", "healthy")})
    schema = reader._schema()["properties"]
    assert schema["health"]["description"].startswith("-1 = indulgent, +1 = healthy")
    assert schema["cost"]["description"].startswith("-1 = budget, +1 = luxury")
    assert "health: -1 indulgent, +1 healthy" in reader._prompt(None, "Salad, please.")
