"""Stream a steered reply token by token, sync and async.

Run: python examples/streaming.py
"""

import asyncio

from langchain_steer import SteeredChatModel

llm = SteeredChatModel(model="demo", max_tokens=60)

print("cost=+1: ", end="")
for chunk in llm.stream(
    "Can you recommend a place to eat in Chicago tonight?", steering={"cost": 1.0}
):
    print(chunk.content, end="", flush=True)
    if chunk.usage_metadata:
        print(f"\n[usage: {chunk.usage_metadata}, steering: {chunk.response_metadata['steering']}]")


async def main() -> None:
    print("\ncost=-1 (async): ", end="")
    async for chunk in llm.astream(
        "Can you recommend a place to eat in Chicago tonight?", steering={"cost": -1.0}
    ):
        print(chunk.content, end="", flush=True)
    print()


asyncio.run(main())
