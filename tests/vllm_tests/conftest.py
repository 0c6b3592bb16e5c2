"""The vLLM engine's tests: vLLM's CPU build, the demo model in float32, in the vLLM venv.

They run with ``make test-vllm`` (part of ``make test``), which builds ``.venv-vllm``: vLLM needs an older
transformers than the main environment. Run elsewhere, without vLLM, they are skipped with that reason;
``make test-vllm`` sets ``LANGCHAIN_STEER_REQUIRE_VLLM=1`` so that in CI a missing vLLM fails instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_LENS_DISABLE", "1")  # vllm-lens, when installed for the benchmark, must not act
os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(__file__).resolve().parents[2] / ".vllm-cache"))

HAS_VLLM = importlib.util.find_spec("vllm") is not None
REASON = "vLLM is not installed here: run `make test-vllm`, which builds .venv-vllm with it"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_VLLM:
        return
    if os.environ.get("LANGCHAIN_STEER_REQUIRE_VLLM") == "1":
        raise pytest.UsageError(f"LANGCHAIN_STEER_REQUIRE_VLLM=1 but {REASON}.")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=REASON))


@pytest.fixture(scope="session", autouse=True)
def _close_engines_at_the_end():
    """Shut vLLM down while pytest still captures output (at exit its log lines hit closed streams)."""
    yield
    if HAS_VLLM:
        from langchain_steer.engines.vllm import close_engines

        close_engines()


@pytest.fixture(scope="session")
def vllm_llm():
    """The demo model on the vLLM engine in float32 (its bfloat16 on CPU varies with the batch)."""
    from langchain_steer import SteeredChatModel

    return SteeredChatModel(engine="vllm", dtype="float32", max_tokens=24)


@pytest.fixture(scope="session")
def plain_vllm():
    """vLLM with no steering installed at all: no basis, no hooks (the unsteered reference)."""
    from langchain_steer import SteeredChatModel

    return SteeredChatModel(engine="vllm", dtype="float32", max_tokens=24, vectors={})


@pytest.fixture(scope="session")
def hf_llm():
    """The same model on our HF engine, the reference for steered replies."""
    from langchain_steer import SteeredChatModel

    return SteeredChatModel(dtype="float32", max_tokens=24)
