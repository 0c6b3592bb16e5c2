"""SteeredChatModel behaviour on the real embedded SmolLM2-135M-Instruct."""

import asyncio
import threading

import pytest
from pole_words import REPLY_PREFIX, word_logprobs
from pydantic import BaseModel, Field

from langchain_steer import SteeredChatModel, load_dimension


@pytest.fixture(scope="module")
def llm():
    return SteeredChatModel(model="demo", max_tokens=8)


STEERINGS = [
    {"cost": (i % 5 - 2) / 2, "age": (i % 3 - 1) / 2, "time": ((i * 7) % 5 - 2) / 4}
    for i in range(16)
]


def test_sixteen_threads_match_their_solo_runs(llm):
    prompt = "Can you suggest a restaurant for dinner with a friend?"
    solo = [llm.invoke(prompt, steering=s).content for s in STEERINGS]
    results = [None] * len(STEERINGS)

    def run(i):
        results[i] = llm.invoke(prompt, steering=STEERINGS[i]).content

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(STEERINGS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == solo
    assert len(set(solo)) > 1, "steering should change at least some replies"


async def test_sixteen_tasks_match_their_solo_runs(llm):
    prompt = "Can you suggest a restaurant for dinner with a friend?"
    solo = [llm.invoke(prompt, steering=s).content for s in STEERINGS]
    results = await asyncio.gather(*(llm.ainvoke(prompt, steering=s) for s in STEERINGS))
    assert [r.content for r in results] == solo


def test_cost_moves_a_restaurant_answer_towards_its_pole():
    """Generate at cost -1 and +1; the reply itself then predicts its pole's words (unsteered scoring)."""
    llm = SteeredChatModel(model="demo", max_tokens=40)
    model, tokenizer = llm._load()[:2]
    dim = load_dimension("cost")
    prompts = [
        p["prompt"] for p in dim.pairs if p["task"] == "restaurant" and p["split"] == "test"
    ][:3]
    margin = {}
    for strength in (-1.0, 1.0):
        total = 0.0
        for prompt in prompts:
            reply = llm.invoke(prompt, steering={"cost": strength}).content
            context = (
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                    tokenize=False,
                )
                + "<|im_start|>user\nDescribe that place in one word.<|im_end|>\n<|im_start|>assistant\n"
            )
            context += REPLY_PREFIX.split("!")[0] + "! It is"
            luxury = word_logprobs(model, tokenizer, context, dim.pole_words["positive"])
            budget = word_logprobs(model, tokenizer, context, dim.pole_words["negative"])
            total += sum(luxury) / len(luxury) - sum(budget) / len(budget)
        margin[strength] = total / len(prompts)
    assert margin[1.0] > margin[-1.0], margin


class Dish(BaseModel):
    name: str = Field(description="dish name", max_length=40)
    vegetarian: bool


class Recommendation(BaseModel):
    restaurant: str = Field(description="restaurant name", max_length=40)
    city: str = Field(max_length=30)
    price_level: int = Field(ge=1, le=4)
    dishes: list[Dish] = Field(max_length=2)


PROMPTS = [
    "Recommend a restaurant in Paris.",
    "Where should I eat in Tokyo?",
    "A good dinner spot in Rome?",
    "Suggest a cheap place for lunch in Berlin.",
    "Fancy restaurant in New York for an anniversary?",
    "Family-friendly place to eat in London?",
    "Best brunch in Sydney?",
    "Vegetarian food in Mumbai?",
    "Late-night food in Madrid?",
    "Seafood restaurant in Lisbon?",
    "Where to get tacos in Mexico City?",
    "A quiet cafe in Vienna?",
    "Street food in Bangkok?",
    "Steakhouse in Chicago?",
    "Somewhere romantic in Venice?",
    "Ramen in Osaka?",
    "Pizza in Naples?",
    "Dim sum in Hong Kong?",
    "Breakfast place in Toronto?",
    "Dinner with kids in Amsterdam?",
]


def test_nested_structured_output_parses_on_twenty_prompts():
    # The budget must fit the schema's longest reply: Japanese text costs 2-3 tokens a character, and the
    # Tokyo prompt's reply takes about 250 tokens.
    llm = SteeredChatModel(model="demo", max_tokens=320)
    structured = llm.with_structured_output(Recommendation, include_raw=True)
    results = [
        structured.invoke(p, steering={"cost": (i % 3 - 1) * 0.5}) for i, p in enumerate(PROMPTS)
    ]
    errors = [
        (p, r["raw"].content, r["parsing_error"])
        for p, r in zip(PROMPTS, results, strict=True)
        if r["parsing_error"]
    ]
    assert not errors
    assert all(isinstance(r["parsed"], Recommendation) for r in results)
