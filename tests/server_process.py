"""``langchain-steer serve`` in a subprocess on a free loopback port: the server tests' shared harness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KEY_ANA = "sk-ana-0123456789abcdef"
KEY_APP = "sk-app-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(process: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s")


class Server:
    """``langchain-steer serve`` in a subprocess, restartable on the same database.

    With ``keys=False`` it runs without API keys (loopback only), as a user's first ``serve`` does.
    """

    def __init__(
        self, folder: Path, db: str | None = None, extra: tuple[str, ...] = (), keys: bool = True
    ) -> None:
        self.folder = folder
        self.extra = extra
        self.db = db or str(folder / "preferences.db")
        self.keys = folder / "keys.json" if keys else None
        if self.keys is not None:
            self.keys.write_text(json.dumps({KEY_ANA: ["ana"], KEY_APP: "*"}))
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        path = self.folder / f"server-{self.port}.log"
        log = open(path, "w")  # noqa: SIM115 - closed with the process
        keys = ("--api-keys", str(self.keys)) if self.keys is not None else ()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "langchain_steer.cli", "serve", "--port", str(self.port),
                "--db", self.db, *keys, *self.extra,
            ],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        wait_until_ready(self.process, f"{self.url}/ready", path, 180)
        return self

    def kill(self) -> None:
        """``kill -9``: no shutdown handler runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def check_chat_openai(url: str) -> None:
    """``ChatOpenAI(base_url=url)`` in an LCEL chain, with a forced tool call and structured output."""
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    llm = ChatOpenAI(base_url=f"{url}/v1", api_key=KEY_APP, model="demo", max_tokens=40)
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | llm
    assert chain.invoke({"question": "Say hello."}).content

    @tool
    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return "sunny"

    called = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Paris?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    assert isinstance(called.tool_calls[0]["args"].get("city"), str)

    class Plan(BaseModel):
        place: str
        budget_dollars: int

    roomy = ChatOpenAI(base_url=f"{url}/v1", api_key=KEY_APP, model="demo", max_tokens=200)
    plan = roomy.with_structured_output(Plan).invoke("Plan a cheap dinner in Paris.")
    assert isinstance(plan, Plan)


class VLLMServer:
    """vLLM's own OpenAI server with our plugin (``LANGCHAIN_STEER_VECTORS=demo``) on the demo model.

    A context manager: it starts the server on a free loopback port and stops it on exit.
    """

    def __init__(self, folder: str, log: Path, name: str = "demo") -> None:
        self.folder, self.log, self.name = folder, log, name
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> VLLMServer:
        self._log = open(self.log, "w")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.folder,
                "--served-model-name", self.name, "--host", "127.0.0.1", "--port", str(self.port),
                "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
                "--generation-config", "vllm",
            ],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "LANGCHAIN_STEER_VECTORS": "demo", "VLLM_CPU_KVCACHE_SPACE": "1"},
        )  # fmt: skip
        try:
            wait_until_ready(self.process, f"{self.url}/health", self.log, 300)
            return self
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
