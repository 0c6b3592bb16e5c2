"""Serve several users at once, each with their own preferences, from one model.

Run: python examples/many_users.py

Every call is one row of a shared batch: the users below are answered by the same forward passes, each row
steered its own way. First a ``batch`` with one steering per input, then concurrent streams.
"""

import asyncio
import time

from langchain_steer import SteeredChatModel

USERS = {
    "ana (budget)": {"cost": -1.0},
    "ben (luxury)": {"cost": 1.0},
    "chloe (with kids)": {"age": -1.0},
    "dev (early bird)": {"time": 1.0},
}
QUESTION = "Can you recommend a place for dinner this weekend?"


async def stream_all(llm: SteeredChatModel) -> dict[str, str]:
    replies = {name: "" for name in USERS}

    async def one(name: str) -> None:
        async for chunk in llm.astream(QUESTION, steering=USERS[name]):
            replies[name] += chunk.content  # tokens arrive for every user step by step

    await asyncio.gather(*(one(name) for name in USERS))
    return replies


def main() -> None:
    llm = SteeredChatModel(model="demo", max_tokens=48)
    start = time.perf_counter()
    answers = llm.batch([QUESTION] * len(USERS), steering=list(USERS.values()))
    print(f"batch of {len(USERS)} in {time.perf_counter() - start:.1f} s\n")
    for name, answer in zip(USERS, answers, strict=True):
        print(f"{name}: {answer.content}\n")

    start = time.perf_counter()
    streamed = asyncio.run(stream_all(llm))
    print(f"{len(USERS)} concurrent streams in {time.perf_counter() - start:.1f} s")
    same = list(streamed.values()) == [a.content for a in answers]
    print(f"streamed replies identical to the batch's (greedy decoding): {same}")


if __name__ == "__main__":
    main()
