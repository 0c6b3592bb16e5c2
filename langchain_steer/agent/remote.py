"""The agent against a model served elsewhere: steer ``ChatOpenAI`` through the request body.

An application's LangGraph agent often runs on one machine and the model on another, behind
``langchain-steer serve``. ``ChatOpenAI(base_url=...)`` speaks to that server, but a plain ``steering=``
keyword would reach the ``openai`` SDK as an unknown argument. :class:`RemoteSteering` is the one small
adapter between them: it sends the strengths as ``extra_body={"steering": ...}`` and reads the server's
dimensions from ``GET /v1/steering/dimensions``. :func:`~langchain_steer.agent.build_preference_agent`
wraps a ``ChatOpenAI`` in it by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RemoteSteering", "is_openai_chat_model"]


def is_openai_chat_model(model: Any) -> bool:
    """Whether ``model`` is a ``langchain-openai`` chat model: a base URL, and no steering of its own."""
    return hasattr(model, "openai_api_base") and not hasattr(model, "steering_dimensions")


class RemoteSteering:
    """Steers an OpenAI-compatible chat model that points at ``langchain-steer serve``.

    Args:
        llm: a ``ChatOpenAI`` (or any chat model with ``openai_api_base`` and ``openai_api_key``) whose base
            URL is the server's ``/v1``.

    Example:
        >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
        >>> remote = RemoteSteering(ChatOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="sk-..."))
        >>> remote.invoke("Plan a dinner.", steering={"cost": -1}).content  # doctest: +SKIP
    """

    def __init__(self, llm: Any) -> None:
        if not getattr(llm, "openai_api_base", None):
            raise ValueError(
                "RemoteSteering needs a ChatOpenAI with base_url set to the langchain-steer server "
                "(e.g. http://127.0.0.1:8000/v1)."
            )
        self.llm = llm
        self._dimensions: list[str] | None = None

    def invoke(self, messages: Any, *, steering: Mapping[str, float] | None = None, **kwargs: Any) -> Any:
        """Call the remote model with ``steering`` sent in the body (merged into any ``extra_body``)."""
        extra = {**(kwargs.pop("extra_body", None) or {}), "steering": dict(steering or {})}
        return self.llm.invoke(messages, extra_body=extra, **kwargs)

    def steering_dimensions(self) -> list[str]:
        """The dimensions the server can steer, read once from ``GET /v1/steering/dimensions``.

        Raises:
            ConnectionError: the server cannot be reached or answers with an error.
        """
        if self._dimensions is None:
            import httpx

            key: Any = getattr(self.llm, "openai_api_key", None)
            secret = key.get_secret_value() if hasattr(key, "get_secret_value") else key
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            url = f"{str(self.llm.openai_api_base).rstrip('/')}/steering/dimensions"
            try:
                response = httpx.get(url, headers=headers, timeout=30)
                response.raise_for_status()
            except httpx.HTTPError as error:
                raise ConnectionError(f"Cannot read the steering dimensions from {url}: {error}") from error
            self._dimensions = [entry["name"] for entry in response.json()["data"]]
        return list(self._dimensions)
