r"""A vLLM general plugin: per-request steering in vLLM's own OpenAI server, for teams that only want that.

vLLM loads every ``vllm.general_plugins`` entry point in each of its processes; ours is :func:`register`.
It acts only where the operator configured vectors, in the server's environment (never from a request)::

    LANGCHAIN_STEER_VECTORS=demo \\
    python -m vllm.entrypoints.openai.api_server --model DIR --enforce-eager --dtype float32

``LANGCHAIN_STEER_VECTORS`` is a folder of ``.safetensors`` steering vectors, or ``demo`` for the vectors
shipped for the demo model. Once a worker has loaded the model, the plugin stacks the vectors into a
:class:`~langchain_steer.engines.basis.SteeringBasis` and installs the same hooks as our own vLLM engine
(:mod:`langchain_steer.engines.vllm_worker`). A request then steers through ``vllm_xargs``, whose values
must be strings or numbers, so the strengths travel as a JSON string::

    client.chat.completions.create(..., extra_body={"vllm_xargs": {"steering": '{"cost": -0.7}'}})

``LANGCHAIN_STEER_POSITIONS`` (``all`` or ``generated``) sets the default position policy; a request may
send ``"positions"`` in ``vllm_xargs`` too. ``--enforce-eager`` is required: the hooks run in Python on every
forward pass, which a captured CUDA graph would skip.

**The prefix cache.** vLLM's own server does not know that a steered prompt's KV differs. Either start it
with ``--no-enable-prefix-caching``, or have every client send a ``cache_salt`` that differs per steering
(``langchain_steer.engines.vllm.cache_salt(strengths, positions)`` computes the one our engine uses).
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["ENV_POSITIONS", "ENV_VECTORS", "register"]

logger = logging.getLogger(__name__)

ENV_VECTORS = "LANGCHAIN_STEER_VECTORS"
ENV_POSITIONS = "LANGCHAIN_STEER_POSITIONS"


def _basis_payload() -> bytes:
    from langchain_steer.dimensions import builtin_vectors
    from langchain_steer.engines.basis import SteeringBasis
    from langchain_steer.packs import load_vectors

    source = os.environ[ENV_VECTORS]
    vectors = builtin_vectors("demo") if source == "demo" else load_vectors(source)
    positions = os.environ.get(ENV_POSITIONS, "all")
    return SteeringBasis.from_vectors(vectors, positions=positions).to_bytes()


def _wrap_load_model(runner_class: Any) -> None:
    original = runner_class.load_model
    if getattr(original, "_langchain_steer", False):
        return

    def load_model(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        from langchain_steer.engines.vllm_worker import install_on_runner

        held = install_on_runner(self, _basis_payload())
        logger.warning("langchain-steer: per-request steering installed on layers %s", held)
        return result

    load_model._langchain_steer = True  # type: ignore[attr-defined]
    runner_class.load_model = load_model


def register() -> None:
    """Plugin entry point for vLLM: wrap the model runners' ``load_model`` when vectors are configured."""
    if not os.environ.get(ENV_VECTORS):
        return
    for module, name in (
        ("vllm.v1.worker.gpu_model_runner", "GPUModelRunner"),
        ("vllm.v1.worker.cpu_model_runner", "CPUModelRunner"),
    ):
        try:
            runner_class = getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):  # a platform without that runner
            continue
        _wrap_load_model(runner_class)
