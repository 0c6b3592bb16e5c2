"""The OpenAI-compatible server as a real process: uvicorn on a loopback port, the demo model, real clients.

Each test talks HTTP to ``langchain-steer serve`` started in a subprocess (not a TestClient): the official
``openai`` SDK, ``langchain-openai``'s ``ChatOpenAI``, and ``httpx`` for the raw error cases.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from server_process import KEY_ANA, KEY_APP, Server, check_chat_openai, free_port

from langchain_steer import SteeredChatModel

PROMPT = "Plan a dinner for Saturday."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def local():
    """The same model in process, the reference every reply is compared with."""
    return SteeredChatModel(model="demo", max_tokens=24, max_batch_size=1)


def _client(server, key=KEY_APP):
    from openai import OpenAI

    return OpenAI(base_url=f"{server.url}/v1", api_key=key)


def test_openai_sdk_chat_and_stream_equal_the_chat_model(server, local):
    client = _client(server)
    steering = {"cost": -1.0}
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=24,
        extra_body={"steering": steering},
    )  # fmt: skip
    expected = local.invoke(PROMPT, steering=steering).content
    assert reply.choices[0].message.content == expected
    assert reply.model_extra["steering"] == steering
    assert reply.usage.completion_tokens > 0
    assert expected != local.invoke(PROMPT).content  # the steering changed the reply
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": PROMPT}], max_tokens=24, stream=True,
        stream_options={"include_usage": True}, extra_body={"steering": steering},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # streamed, not whole
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert [m.id for m in client.models.list()] == ["demo"]


def test_chat_openai_in_a_chain_with_tools_and_structured_output(server):
    check_chat_openai(server.url)


def test_bad_input_gets_a_clean_4xx_and_the_server_keeps_serving(server):
    url = f"{server.url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {KEY_APP}"}
    raw = {**auth, "Content-Type": "application/json"}
    ok = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    cases = [
        ("malformed JSON", {"content": b"{not json", "headers": raw}, 400),
        ("unknown dimension", {"json": {**ok, "steering": {"cots": 1}}, "headers": auth}, 400),
        ("NaN", {"content": b'{"messages":[{"role":"user","content":"hi"}],"steering":{"cost":NaN}}',
                 "headers": raw}, 400),
        ("huge max_tokens", {"json": {**ok, "max_tokens": 10**9}, "headers": auth}, 400),
        ("oversize body", {"json": {"messages": [{"role": "user", "content": "x" * 1_100_000}]},
                           "headers": auth}, 413),
        ("too many messages", {"json": {"messages": [{"role": "user", "content": "hi"}] * 300},
                               "headers": auth}, 400),
        ("bad user", {"json": {**ok, "user": "../../etc/passwd"}, "headers": auth}, 400),
        ("missing key", {"json": ok}, 401),
        ("wrong key", {"json": ok, "headers": {"Authorization": "Bearer sk-wrong-0123456789abcdef"}}, 401),
        ("another user's", {"json": {**ok, "user": "bob"},
                            "headers": {"Authorization": f"Bearer {KEY_ANA}"}}, 403),
        ("n=2", {"json": {**ok, "n": 2}, "headers": auth}, 400),
    ]  # fmt: skip
    for name, request, status in cases:
        response = httpx.post(url, timeout=30, **request)
        assert response.status_code == status, (name, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], name
        assert "Traceback" not in response.text, name
    ana = {"Authorization": f"Bearer {KEY_ANA}"}
    other = httpx.get(f"{server.url}/v1/users/bob/preferences", headers=ana)
    assert other.status_code == 403
    assert httpx.post(url, json=ok, headers=auth, timeout=60).status_code == 200  # still serving


def test_preferences_endpoints_and_learn_mode_share_the_agent_store(server):
    from langgraph.store.sqlite import SqliteStore  # noqa: F401 - the agent's store type

    from langchain_steer.agent.nodes import STORE_KEY
    from langchain_steer.agent.persistence import SqlitePersistence
    from langchain_steer.agent.state import preference_namespace

    headers = {"Authorization": f"Bearer {KEY_ANA}"}
    base = f"{server.url}/v1/users/ana/preferences"
    assert httpx.put(base, json={"preferences": {"cost": 0.6}}, headers=headers).json()["preferences"] == {
        "cost": 0.6
    }
    client = _client(server, KEY_ANA)
    reply = client.chat.completions.create(
        model="demo", max_tokens=8, user="ana",
        messages=[{"role": "user", "content": "We're on a tight budget and bringing our toddler."}],
        extra_body={"preference_mode": "learn"},
    )  # fmt: skip
    learned = reply.model_extra["steering"]
    assert learned["cost"] < 0 and learned["age"] < 0
    stored = httpx.get(base, headers=headers).json()["preferences"]
    assert stored["cost"] < 0 and stored["age"] < 0
    # The CLI agent's store reads the same value from the same file.
    with SqlitePersistence(server.db) as db:
        item = db.store.get(preference_namespace("ana"), STORE_KEY)
    assert item is not None and item.value["preferences"]["cost"] == stored["cost"]
    selected = client.chat.completions.create(
        model="demo", max_tokens=4, user="ana", messages=[{"role": "user", "content": "Hi"}]
    )
    assert selected.model_extra["steering"]["cost"] == stored["cost"]


def _postgres_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server on a loopback port, in a fresh data folder, stopped at the end."""
    binaries = _postgres_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing: `make test` installs Debian's postgresql package.")
        pytest.skip("PostgreSQL is not installed here; `make test` installs Debian's postgresql package.")
    # Directly under /tmp: pytest's own temporary folders are private to root, and the server runs as
    # another user.
    folder = Path(tempfile.mkdtemp(prefix="langchain-steer-pg-"))
    data, port = folder / "data", free_port()
    # initdb refuses to run as root: run the server as the postgres user the Debian package creates.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        subprocess.run(["chown", "-R", "postgres", str(folder)], check=True)
        folder.chmod(0o777)
    subprocess.run(
        [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l",
         str(folder / "postgres.log"), "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_learned_preferences_survive_kill_9_and_restart(tmp_path, backend, request):
    db = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    server = Server(tmp_path, db=db).start()
    try:
        headers = {"Authorization": f"Bearer {KEY_APP}"}
        body = {
            "model": "demo", "max_tokens": 4, "user": "carol", "preference_mode": "learn",
            "messages": [{"role": "user", "content": "Money is tight, so cheap options please."}],
        }  # fmt: skip
        learned = httpx.post(
            f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=120
        ).json()["steering"]
        assert learned["cost"] < 0
        server.kill()
        server.start()
        stored = httpx.get(f"{server.url}/v1/users/carol/preferences", headers=headers).json()
        assert stored["preferences"]["cost"] == learned["cost"]
    finally:
        server.stop()


async def test_32_concurrent_streams_equal_their_solo_replies_and_a_disconnect_frees_its_row(
    server, local
):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key=KEY_APP)
    dims = ["cost", "ambiance", "age", "time", "culture"]
    steerings = [{dims[i % 5]: (-1.0, -0.5, 0.5, 1.0)[i % 4]} for i in range(32)]
    prompts = [f"Suggest a weekend plan number {i % 8}." for i in range(32)]

    async def one(prompt, steering):
        stream = await client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": prompt}], max_tokens=16,
            stream=True, extra_body={"steering": steering},
        )  # fmt: skip
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    replies = await asyncio.gather(*(one(p, s) for p, s in zip(prompts, steerings, strict=True)))
    solo = SteeredChatModel(model="demo", max_tokens=16, max_batch_size=1)
    expected = [solo.invoke(p, steering=s).content for p, s in zip(prompts, steerings, strict=True)]
    differing = sum(a != b for a, b in zip(replies, expected, strict=True))
    assert differing <= 4, differing  # one row in eight, as the batching tests allow (rounding)

    def cancelled() -> float:
        text = httpx.get(f"{server.url}/metrics").text
        line = next(x for x in text.splitlines() if x.startswith("langchain_steer_cancelled_rows "))
        return float(line.split()[1])

    before = cancelled()
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", timeout=60,
        headers={"Authorization": f"Bearer {KEY_APP}"},
        json={"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 400, "stream": True},
    ) as response:  # fmt: skip
        for index, _ in enumerate(response.iter_lines()):
            if index > 4:
                break  # hang up mid-stream
    for _ in range(100):
        if cancelled() > before:
            break
        time.sleep(0.1)
    assert cancelled() == before + 1


def test_the_preference_agent_steers_a_chat_openai_pointed_at_the_server(server):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI
    from langgraph.store.memory import InMemoryStore

    from langchain_steer.agent import AgentContext, RemoteSteering, build_preference_agent

    remote = ChatOpenAI(base_url=f"{server.url}/v1", api_key=KEY_APP, model="demo", max_tokens=20)
    agent = build_preference_agent(model=remote, mode="learn", store=InMemoryStore())
    question = "We're on a tight budget and bringing our toddler. Ideas for Saturday?"
    result = agent.invoke({"messages": [("user", question)]}, context=AgentContext(user_id="dana"))
    applied = result["applied"]
    assert applied["cost"] < 0 and applied["age"] < 0
    # The reply is the server's steered reply: the same call made by hand gives the same text.
    direct = RemoteSteering(remote).invoke([HumanMessage(question)], steering=applied)
    assert result["messages"][-1].content == direct.content
    assert direct.content != remote.invoke([HumanMessage(question)]).content  # steering changed it
    assert RemoteSteering(remote).steering_dimensions() == ["cost", "ambiance", "age", "time", "culture"]


async def test_a_full_queue_answers_429_with_retry_after_at_once(tmp_path):
    server = Server(tmp_path, extra=("--max-batch-size", "1", "--max-queue", "1")).start()
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40}
            headers = {"Authorization": f"Bearer {KEY_APP}"}
            responses = await asyncio.gather(
                *(client.post(f"{server.url}/v1/chat/completions", json=body, headers=headers)
                  for _ in range(6))
            )  # fmt: skip
        statuses = sorted(r.status_code for r in responses)
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}, statuses
        busy = next(r for r in responses if r.status_code == 429)
        assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "queue_full"
    finally:
        server.stop()


def test_sigterm_lets_a_reply_in_flight_finish_then_exits(tmp_path):
    server = Server(tmp_path).start()
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 48, "stream": True}
    headers = {"Authorization": f"Bearer {KEY_APP}"}
    lines = []
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=120
    ) as response:
        for line in response.iter_lines():
            if line:
                lines.append(line)
            if len(lines) == 3:
                server.process.send_signal(signal.SIGTERM)  # mid-stream
    assert len(lines) > 10 and lines[-1] == "data: [DONE]"  # the stream in flight was finished, not cut
    # uvicorn re-raises the signal it handled once the shutdown is done, so the status is SIGTERM's.
    assert server.process.wait(60) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/health", timeout=2)  # and it no longer accepts requests


def test_calibrate_sessions_over_http(server):
    auth = {"Authorization": f"Bearer {KEY_APP}"}
    start = {"messages": [{"role": "user", "content": PROMPT}], "dimensions": ["cost"], "max_tokens": 8}
    first = httpx.post(f"{server.url}/v1/users/bob/calibration", json=start, headers=auth, timeout=120)
    assert first.status_code == 200, first.text
    round_one = first.json()
    assert round_one["done"] is False and round_one["dimension"] == "cost"
    assert round_one["strengths"] == {"A": -0.5, "B": 0.5} and round_one["A"] != round_one["B"]
    session = round_one["session"]
    url = f"{server.url}/v1/users/bob/calibration/{session}"
    # Another user's key, or another user's path, never reaches bob's session.
    ana = {"Authorization": f"Bearer {KEY_ANA}"}
    assert httpx.post(url, json={"choice": "A"}, headers=ana, timeout=60).status_code == 403
    other = f"{server.url}/v1/users/ana/calibration/{session}"
    assert httpx.post(other, json={"choice": "A"}, headers=ana, timeout=60).status_code == 404
    assert httpx.post(url, json={"choice": "maybe"}, headers=auth, timeout=60).status_code == 400
    assert httpx.post(url, json={"choice": "A"}, headers=auth, timeout=120).json()["round"] == 2
    done = httpx.post(url, json={"choice": "B"}, headers=auth, timeout=120).json()
    assert done["done"] is True and done["preferences"]["cost"] == pytest.approx(-0.25)
    stored = httpx.get(f"{server.url}/v1/users/bob/preferences", headers=auth).json()["preferences"]
    assert stored["cost"] == pytest.approx(-0.25)
    assert httpx.post(url, json={"choice": "A"}, headers=auth, timeout=60).status_code == 409
    bad = {**start, "dimensions": ["cots"]}
    wrong = httpx.post(f"{server.url}/v1/users/bob/calibration", json=bad, headers=auth, timeout=60)
    assert wrong.status_code == 400 and "cots" in wrong.json()["error"]["message"]
    assert httpx.post(
        f"{server.url}/v1/users/bob/calibration/{'0' * 31}", json={"choice": "A"}, headers=auth
    ).status_code == 404


def test_learn_mode_says_what_moved_and_why(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=KEY_APP)
    turn = "We're on a tight budget and bringing our toddler"
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": turn}], max_tokens=8, user="lucy",
        extra_body={"preference_mode": "learn"},
    )  # fmt: skip
    moved = {change["dimension"]: change for change in reply.model_extra["learned"]}
    assert moved["cost"]["after"] < 0 and moved["age"]["after"] < 0
    assert moved["cost"]["because"] == turn and moved["cost"]["before"] == 0.0
    stream = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": turn}], max_tokens=8, user="lucy2",
        extra_body={"preference_mode": "learn"}, stream=True,
    )  # fmt: skip
    learned = [c.model_extra.get("learned") for c in stream if c.model_extra.get("learned")]
    assert learned and {c["dimension"] for c in learned[0]} >= {"cost", "age"}
