"""Our server on the vLLM engine, and vLLM's own server with our plugin: real processes, real clients."""

from __future__ import annotations

import json

import pytest
from server_process import KEY_APP, Server, VLLMServer, check_chat_openai

from langchain_steer.engines.vllm import cache_salt

PROMPT = "Plan a dinner for Saturday."
STEERING = {"cost": -1.0}


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    running = Server(
        tmp_path_factory.mktemp("vllm-server"), extra=("--engine", "vllm", "--dtype", "float32")
    ).start()
    yield running
    running.stop()


def test_openai_sdk_chat_and_stream_equal_the_vllm_chat_model(vllm_server, vllm_llm):
    from openai import OpenAI

    client = OpenAI(base_url=f"{vllm_server.url}/v1", api_key=KEY_APP)
    expected = vllm_llm.invoke(PROMPT, steering=STEERING).content
    assert expected != vllm_llm.invoke(PROMPT).content
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=24,
        extra_body={"steering": STEERING},
    )  # fmt: skip
    assert reply.choices[0].message.content == expected
    assert reply.model_extra["steering"] == STEERING
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=24, stream=True,
        stream_options={"include_usage": True}, extra_body={"steering": STEERING},
    )  # fmt: skip
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_chat_openai_chain_tools_and_structured_output_on_vllm(vllm_server):
    check_chat_openai(vllm_server.url)


def test_vllms_own_server_steers_through_vllm_xargs(tmp_path, vllm_llm):
    from openai import OpenAI

    with VLLMServer(vllm_llm.batcher().folder, tmp_path / "vllm.log") as server:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        messages = [{"role": "user", "content": PROMPT}]

        def ask(steering):
            extra = {"vllm_xargs": {"steering": json.dumps(steering)}} if steering else {}
            if steering:
                extra["cache_salt"] = cache_salt(steering, "all")
            reply = client.chat.completions.create(
                model="demo", messages=messages, max_tokens=24, temperature=0, extra_body=extra
            )
            return reply.choices[0].message.content

        assert ask(STEERING) == vllm_llm.invoke(PROMPT, steering=STEERING).content
        assert ask({}) == vllm_llm.invoke(PROMPT).content
        assert ask(STEERING) != ask({})
