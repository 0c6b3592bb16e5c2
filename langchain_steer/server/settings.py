"""What the server is started with: the model, the vectors, the database, the keys and every limit.

Everything here is fixed when the server starts. No request can name a model, a vector file, a path or
``trust_remote_code``: a request carries only messages, decoding settings and strengths, all bounded by
:class:`Limits`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ANY_USER", "Limits", "ServerSettings", "check_user", "read_api_keys"]

ANY_USER = "*"
"""In a key file, the user list that lets a key act for every user (a trusted application)."""

_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_user(user: str) -> str:
    """Return ``user`` if it is a valid user name: 1 to 64 of ``A-Z a-z 0-9 . _ @ -``, starting alphanumeric.

    Raises:
        ValueError: the name is empty, too long or holds other characters.
    """
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise ValueError(
            "A user name is 1 to 64 characters of letters, digits, '.', '_', '@' and '-', starting "
            "with a letter or digit."
        )
    return user


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for; anything larger is a 400 (or 413 for the body).

    Attributes:
        max_body_bytes: the largest request body.
        max_messages: the most messages in one conversation.
        max_message_chars: the longest message text.
        max_tokens: the largest ``max_tokens`` / ``max_completion_tokens``.
        max_tools: the most tools in one request.
        max_schema_bytes: the largest tool or response schema, as JSON.
        max_stop: the most stop strings.
    """

    max_body_bytes: int = 1_000_000
    max_messages: int = 256
    max_message_chars: int = 32_000
    max_tokens: int = 2048
    max_tools: int = 64
    max_schema_bytes: int = 65_536
    max_stop: int = 4


@dataclass(frozen=True)
class ServerSettings:
    """How to run the server.

    Attributes:
        model: what :class:`~langchain_steer.SteeredChatModel` loads: ``"demo"``, a hub id, a local folder
            or a ``.gguf`` file.
        vectors: a folder of ``.safetensors`` vectors; ``None`` uses the model's built-in ones.
        db: where preferences live: a SQLite file path, or a ``postgresql://`` URL. ``None``: the SQLite
            file the CLI agent uses too (:func:`~langchain_steer.agent.persistence.default_database`).
        api_keys: API key → the user names it may act for (``{"*"}``: every user). Empty: no key needed,
            which is allowed only on a loopback address.
        host: the address to bind.
        port: the port to bind.
        limits: the bounds on requests.
        cors_origins: origins allowed to call from a browser; empty turns CORS off.
        max_batch_size: the most replies decoded together.
        max_queue: the most requests waiting; beyond it the server answers 429.
        shutdown_timeout: seconds that requests in flight get to finish at shutdown before they are cancelled.
        device: the device to load the model on (``None``: CUDA when available).
        dtype: the weights dtype (``None``: float32 on CPU, bfloat16 on CUDA).
        engine: ``"hf"`` (transformers and our micro-batcher) or ``"vllm"`` (vLLM's engine).
        engine_args: vLLM ``AsyncEngineArgs`` settings (tensor and pipeline parallel sizes, ...), with
            ``engine="vllm"`` only.
    """

    model: str = "demo"
    vectors: str | None = None
    db: str | None = None
    api_keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    limits: Limits = field(default_factory=Limits)
    cors_origins: tuple[str, ...] = ()
    max_batch_size: int = 8
    max_queue: int = 256
    shutdown_timeout: float = 30.0
    device: str | None = None
    dtype: str | None = None
    engine: str = "hf"
    engine_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ("hf", "vllm"):
            raise ValueError(f"engine must be 'hf' or 'vllm', not {self.engine!r}.")
        if not self.api_keys and not is_loopback(self.host):
            raise ValueError(
                f"Binding {self.host} (not a loopback address) needs an API key: pass --api-key or "
                "--api-keys FILE, or bind 127.0.0.1."
            )
        for key, users in self.api_keys.items():
            if len(key) < 16:
                raise ValueError("API keys must be at least 16 characters long.")
            for user in users:
                if user != ANY_USER:
                    check_user(user)
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be from 1 to 65535, not {self.port}.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_keys(path: str | Path) -> dict[str, frozenset[str]]:
    """Read a key file: a JSON object mapping each API key to a list of user names, or to ``"*"``.

    Example file::

        {"sk-ana-0123456789abcdef": ["ana"], "sk-app-0123456789abcdef": "*"}

    Raises:
        ValueError: the file is not such an object (the message names the file).
    """
    source = Path(path)
    try:
        raw = json.loads(source.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{source}: cannot read the API key file: {error}") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: the API key file must be a JSON object of key → users.")
    keys: dict[str, frozenset[str]] = {}
    for key, users in raw.items():
        if users == ANY_USER:
            keys[key] = frozenset({ANY_USER})
        elif isinstance(users, list) and all(isinstance(u, str) for u in users) and users:
            keys[key] = frozenset(users)
        else:
            raise ValueError(f"{source}: key {key[:4]}…: users must be a non-empty list or \"*\".")
    return keys
