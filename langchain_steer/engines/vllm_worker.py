"""The vLLM worker extension that steers every request of a batch by its own strengths.

vLLM mixes this class into each of its workers when the engine is started with
``worker_extension_cls="langchain_steer.engines.vllm_worker.SteeringExtension"``. The engine then calls
:meth:`SteeringExtension.install_steering` on every worker through ``collective_rpc``, once, with the
serialised :class:`~langchain_steer.engines.basis.SteeringBasis`. From then on a request steers by carrying
its strengths in ``SamplingParams.extra_args``::

    SamplingParams(max_tokens=64, extra_args={"steering": {"cost": -0.7}, "positions": "all"})

(over vLLM's own HTTP server the same dictionary is sent as ``vllm_xargs``).

**One forward pass.** A pre-hook on the first steered block reads the flattened batch: the request ids in
batch order (``input_batch.req_ids``), where each request's tokens start (``query_start_loc`` of the
attention metadata) and each token's position. It builds one coefficient matrix ``C`` of shape ``(tokens, 2 *
dimensions)``: request ``i``'s coefficient row on its own tokens, zeros elsewhere. A forward hook on each
steered decoder block then adds ``C @ B[layer]`` to the block's output. The work per layer is one matrix
product whatever the number of distinct users in the batch; a batch with no steered request adds nothing.

**Positions.** ``"all"`` steers every token of the request. ``"generated"`` steers only the positions from
the prompt's last token on: the prefill's last prompt token, whose output picks the first new token, and
each generated token, exactly as our HF engine does (:mod:`langchain_steer.hooks`).

**Parallelism.** Under tensor parallelism a decoder block's output is replicated on every rank, so each rank
adds the full offset. Under pipeline parallelism a rank holds only some blocks; the others are placeholders
(``PPMissingLayer``) and get no hook, so each rank steers only the layers it holds.

**CUDA graphs.** ``C`` is built in Python on every forward pass, which a captured CUDA graph would skip: the
engine runs with ``enforce_eager=True``.

A worker cannot answer a request with an error. Strengths are therefore checked before they reach it (by
the chat model, or by our server); here unknown names and non-finite values are ignored and strengths are
clamped to ±2.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from langchain_steer.engines.basis import SteeringBasis

__all__ = ["SteeringExtension", "install_on_runner", "remove_from_runner"]

logger = logging.getLogger(__name__)


def _blocks(model: Any) -> Any:
    """The decoder blocks of a vLLM model: ``model.model.layers`` (Llama, Qwen, Mistral, ...)."""
    if not hasattr(model, "model") and hasattr(model, "get_language_model"):
        model = model.get_language_model()  # multimodal wrappers
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ValueError(
            f"Cannot find the decoder blocks of {type(model).__name__}: expected model.model.layers."
        )
    return layers


class _BatchSteering:
    """Per-forward-pass steering of one worker: the coefficient matrix of the batch being run."""

    def __init__(self, runner: Any, basis: SteeringBasis, device: torch.device) -> None:
        self.runner = runner
        self.basis = basis
        self.matrices = {layer: m.to(device) for layer, m in basis.matrices.items()}
        self.device = device
        self.coefficients: torch.Tensor | None = None
        self._rows: dict[str, tuple[torch.Tensor | None, str, int]] = {}

    def _request_row(self, req_id: str) -> tuple[torch.Tensor | None, str, int]:
        cached = self._rows.get(req_id)
        if cached is not None:
            return cached
        state = self.runner.requests[req_id]
        extra = getattr(state.sampling_params, "extra_args", None) or {}
        row = self.basis.coefficients(extra.get("steering") or {})
        positions = extra.get("positions", self.basis.positions)
        prompt = getattr(state, "num_prompt_tokens", None)
        if prompt is None:
            prompt = len(state.prompt_token_ids or [])
        entry = (row, "generated" if positions == "generated" else "all", int(prompt))
        self._rows[req_id] = entry
        return entry

    def begin(self, positions: torch.Tensor) -> None:
        """Build ``C`` for the forward pass over ``positions`` (one entry per flattened token)."""
        from vllm.forward_context import get_forward_context

        self.coefficients = None
        batch = self.runner.input_batch
        req_ids = list(batch.req_ids[: batch.num_reqs])
        if len(self._rows) > 4 * max(len(req_ids), 8):  # forget finished requests
            self._rows = {r: self._rows[r] for r in req_ids if r in self._rows}
        entries = [self._request_row(r) for r in req_ids]
        if not any(row is not None for row, _, _ in entries):
            return
        metadata = get_forward_context().attn_metadata
        if isinstance(metadata, dict):
            metadata = next(iter(metadata.values()))
        if isinstance(metadata, list):  # one per micro-batch in newer releases
            metadata = metadata[0]
            if isinstance(metadata, dict):
                metadata = next(iter(metadata.values()))
        starts = metadata.query_start_loc.tolist()
        flat = positions.reshape(-1)
        coefficients = torch.zeros(flat.shape[0], self.basis.width, dtype=torch.float32)
        where = flat.cpu()
        for i, (row, policy, prompt) in enumerate(entries):
            if row is None:
                continue
            start, end = starts[i], starts[i + 1]
            if policy == "all":
                coefficients[start:end] = row
            else:
                mask = where[start:end] >= prompt - 1
                coefficients[start:end][mask] = row
        self.coefficients = coefficients.to(self.device)

    def offset(self, layer: int, hidden: torch.Tensor) -> torch.Tensor | None:
        if self.coefficients is None:
            return None
        coefficients = self.coefficients
        if coefficients.shape[0] != hidden.shape[0]:  # padded batch: the padding rows get nothing
            padded = torch.zeros(hidden.shape[0], coefficients.shape[1], device=coefficients.device)
            rows = min(hidden.shape[0], coefficients.shape[0])
            padded[:rows] = coefficients[:rows]
            coefficients = padded
        return (coefficients @ self.matrices[layer]).to(hidden.dtype)


_HANDLES = "_langchain_steer_handles"


def install_on_runner(runner: Any, payload: bytes) -> list[int]:
    """Install per-request steering on a vLLM model runner; return the layers steered on this rank.

    Installing again replaces the previous steering. The hook handles are kept on the runner and removed
    by :func:`remove_from_runner`.
    """
    remove_from_runner(runner)
    basis = SteeringBasis.from_bytes(payload)
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    layers = _blocks(model)
    held = [
        index for index in basis.layers
        if index < len(layers) and type(layers[index]).__name__ != "PPMissingLayer"
    ]  # fmt: skip
    if not held:
        setattr(runner, _HANDLES, [])
        return []
    device = next(layers[held[0]].parameters()).device
    steering = _BatchSteering(runner, basis, device)

    def before(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # A block is called as block(positions, hidden_states, residual).
        positions = kwargs.get("positions", args[0] if args else None)
        if positions is None:
            raise RuntimeError("A decoder block was called without positions.")
        steering.begin(positions)

    def after(index: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output
            offset = steering.offset(index, hidden)
            if offset is None:
                return None
            # vLLM's blocks return (hidden, residual) whose sum is the residual stream: adding to
            # `hidden` adds to the stream, which is where our vectors were measured.
            if isinstance(output, tuple):
                return (hidden + offset, *output[1:])
            return hidden + offset

        return hook

    # C is built once per forward pass, before the first steered block on this rank. (Not on the decoder
    # stack: vLLM's compile wrapper calls its forward directly, which skips module hooks.)
    handles = [layers[held[0]].register_forward_pre_hook(before, with_kwargs=True)]
    handles += [layers[index].register_forward_hook(after(index)) for index in held]
    setattr(runner, _HANDLES, handles)
    logger.info("langchain-steer: steering %d dimensions on layers %s", len(basis.dimensions), held)
    return held


def remove_from_runner(runner: Any) -> None:
    """Remove the steering hooks installed on ``runner`` (no-op when there are none)."""
    for handle in getattr(runner, _HANDLES, []):
        handle.remove()
    setattr(runner, _HANDLES, [])


class SteeringExtension:
    """Methods vLLM adds to each worker (``worker_extension_cls``); called through ``collective_rpc``."""

    def install_steering(self, payload: bytes) -> list[int]:
        """Install per-request steering from a serialised basis; return the layers steered on this rank."""
        return install_on_runner(getattr(self, "model_runner"), payload)  # noqa: B009 - set by vLLM

    def remove_steering(self) -> None:
        """Remove this worker's steering hooks."""
        remove_from_runner(getattr(self, "model_runner"))  # noqa: B009 - set by vLLM
