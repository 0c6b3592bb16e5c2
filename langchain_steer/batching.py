"""Batched decoding where every row has its own steering, and rows join and leave between steps.

:class:`BatchDecoder` is the engine behind the chat model and the micro-batcher
(:mod:`langchain_steer.scheduler`). It runs a decode loop of its own instead of ``model.generate``, because
``generate`` can neither drop a finished row nor take in a new one:

* **Per-row steering.** Each request carries its own offsets (layer → vector). For every forward pass they
  are stacked into one ``(batch, hidden)`` tensor per layer and added by a single hook per layer
  (:func:`~langchain_steer.hooks.stack_row_offsets`), so eight users with eight settings share one forward
  pass.
  Hooks are rebuilt only when the rows change, and removed in ``finally``.
* **Rows leave.** A row that hits EOS, its token limit, or a cancel is removed from the batch (and its KV
  cache rows dropped) before the next forward pass; the others go on.
* **Rows join.** New requests are prefilled on their own (left-padded if several arrive together) and merged
  into the running batch between steps. Merging needs plain per-layer key/value tensors
  (``DynamicLayer``, as in Llama, Qwen, Mistral, SmolLM...); with sliding-window, linear-attention or
  quantised caches new rows wait until the running batch has finished.
* **Same numbers as a solo run, up to padding.** Positions are counted per row, and padding is masked, so a
  row sees exactly its own tokens. Batched matrix products round differently from a single row, so under
  greedy decoding a row can, rarely, pick a different token where two candidates are within rounding
  distance; from then on its text differs. The tests measure the agreement.

Requests and tickets live in :mod:`langchain_steer.tickets` (re-exported here). Each row's logits go
through its own processors (repetition penalty, grammar mask), then temperature and top-p, and are sampled
with the row's own random generator, so a seeded reply does not depend on which other rows shared its batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import TemperatureLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import DynamicLayer

from langchain_steer.hooks import Positions, SteeringHandle, register_offsets, stack_row_offsets
from langchain_steer.tickets import GenerationRequest, LogitsProcessor, Ticket

__all__ = ["BatchDecoder", "GenerationRequest", "Ticket"]


class _Row:
    """Decoding state of one request inside a :class:`BatchDecoder`."""

    def __init__(self, ticket: Ticket, device: torch.device) -> None:
        request = ticket.request
        self.ticket = ticket
        self.request = request
        self.generated: list[int] = []
        self.next_position = len(request.input_ids)
        self.finish_reason: str | None = None
        self.error: BaseException | None = None
        self.processors: list[LogitsProcessor] = list(request.processors)
        self.generator: torch.Generator | None = None
        if request.temperature > 0:
            self.processors.append(TemperatureLogitsWarper(request.temperature))
            if request.top_p < 1.0:
                self.processors.append(TopPLogitsWarper(request.top_p))
            if request.seed is not None:
                self.generator = torch.Generator(device=device).manual_seed(int(request.seed))

    @property
    def greedy_and_plain(self) -> bool:
        return self.request.temperature == 0 and not self.processors

    def ids(self, device: torch.device) -> torch.Tensor:
        return torch.tensor([[*self.request.input_ids, *self.generated]], device=device)

    def choose(self, logits: torch.Tensor) -> int:
        """Pick the next token from this row's ``(1, vocab)`` logits."""
        scores = logits
        if self.processors:
            ids = self.ids(logits.device)
            for processor in self.processors:
                scores = processor(ids, scores)
        if self.request.temperature == 0:
            return int(scores.argmax(-1))
        probs = torch.softmax(scores.float(), dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))


class BatchDecoder:
    """A running batch on one model: admit requests, step, and let finished rows go.

    It is driven by one thread (the micro-batcher's worker), which must hold
    :func:`~langchain_steer.models.model_lock` for the decoder's whole life, and must call :meth:`close`
    (in ``finally``) to remove its hooks. Typical use::

        decoder = BatchDecoder(model)
        try:
            decoder.admit(tickets)
            while decoder.rows:
                for ticket, reason, error in decoder.step():
                    ticket.finish(reason, error)
        finally:
            decoder.close()
    """

    def __init__(self, model: Any, *, layer_path: str | None = None) -> None:
        self.model = model
        self.layer_path = layer_path
        self.rows: list[_Row] = []
        self._admitting: list[_Row] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None
        self._handle = SteeringHandle([], [])
        self.device = model.get_input_embeddings().weight.device
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._takes_positions = "position_ids" in parameters
        self._takes_logits_to_keep = "logits_to_keep" in parameters

    # -- admission ------------------------------------------------------------------------------------
    @property
    def joinable(self) -> bool:
        """Whether new rows can join while others run (plain per-layer key/value caches only)."""
        if self._cache is None or not self.rows:
            return True
        layers = getattr(self._cache, "layers", None) or []
        return bool(layers) and all(
            type(layer) is DynamicLayer and layer.is_initialized for layer in layers
        )

    def free_slots(self, max_batch_size: int) -> int:
        """How many requests can be admitted now."""
        if self.rows and not self.joinable:
            return 0
        return max(0, max_batch_size - len(self.rows))

    def admit(self, tickets: Sequence[Ticket]) -> None:
        """Prefill the prompts of ``tickets`` and add them to the batch.

        Rows are prefilled per position policy (one left-padded forward pass each); their first token is
        chosen by the next :meth:`step`.
        """
        new = [_Row(ticket, self.device) for ticket in tickets]
        self._admitting = new
        self._handle.remove()  # the running rows' hooks must not touch the prefill
        policies: tuple[Positions, ...] = ("all", "generated")
        for positions in policies:
            group = [row for row in new if row.request.positions == positions]
            if group:
                cache, mask, logits = self._prefill(group, positions)
                self._merge(group, cache, mask, logits)
        self._admitting = []
        self._rehook()

    def _prefill(
        self, rows: list[_Row], positions: Positions
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        width = max(len(row.request.input_ids) for row in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            prompt = torch.as_tensor(list(row.request.input_ids), dtype=torch.long)
            ids[i, width - len(prompt) :] = prompt
            mask[i, width - len(prompt) :] = 1
        # Positions count each row's own tokens, exactly as `generate` does for left-padded batches.
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        offsets = stack_row_offsets([row.request.offsets for row in rows])
        handle = register_offsets(
            self.model, offsets, positions=positions, layer_path=self.layer_path
        )
        try:
            output = self._forward(ids, mask, position_ids, cache=None)
        finally:
            handle.remove()
        return self._output_cache(output), mask.to(self.device), output.logits[:, -1, :].float()

    def _merge(
        self, rows: list[_Row], cache: Any, mask: torch.Tensor, logits: torch.Tensor
    ) -> None:
        if not self.rows:
            self.rows, self._cache, self._mask, self._logits = list(rows), cache, mask, logits
            return
        assert self._mask is not None and self._logits is not None
        old, new = self._mask.shape[1], mask.shape[1]
        width = max(old, new)
        # Left-pad both caches to one length: padded keys are masked out, so they add nothing.
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat(
                [_left_pad(mine.keys, width - old), _left_pad(theirs.keys, width - new)]
            )
            mine.values = torch.cat(
                [_left_pad(mine.values, width - old), _left_pad(theirs.values, width - new)]
            )
        self._mask = torch.cat([F.pad(self._mask, (width - old, 0)), F.pad(mask, (width - new, 0))])
        self._logits = torch.cat([self._logits, logits])
        self.rows.extend(rows)

    # -- decoding -------------------------------------------------------------------------------------
    def step(self) -> list[tuple[Ticket, str, BaseException | None]]:
        """Choose one token per row, deliver it, drop finished rows and run the next forward pass.

        Returns:
            ``(ticket, finish_reason, error)`` for each row that left the batch in this step; the caller
            calls ``ticket.finish`` (it may want to remove hooks first).
        """
        assert self._logits is not None
        chosen = self._choose()
        for row, token in zip(self.rows, chosen, strict=True):
            if row.ticket.cancelled:
                row.finish_reason = "cancelled"
            elif token is None:
                row.finish_reason = "error"
            else:
                row.generated.append(token)
                row.ticket.deliver([token])
                if token in row.request.eos_token_ids:
                    row.finish_reason = "stop"
                elif len(row.generated) >= row.request.max_new_tokens:
                    row.finish_reason = "length"
        finished = [row for row in self.rows if row.finish_reason is not None]
        if finished:
            self._evict([i for i, row in enumerate(self.rows) if row.finish_reason is None])
        if self.rows:
            self._decode_step()
        return [(row.ticket, row.finish_reason or "stop", row.error) for row in finished]

    def _choose(self) -> list[int | None]:
        assert self._logits is not None
        chosen: list[int | None] = [None] * len(self.rows)
        plain = [i for i, row in enumerate(self.rows) if row.greedy_and_plain]
        if plain:
            # The common case, in one op: greedy rows without processors.
            for i, token in zip(plain, self._logits[plain].argmax(-1).tolist(), strict=True):
                chosen[i] = int(token)
        for i, row in enumerate(self.rows):
            if row.greedy_and_plain or row.ticket.cancelled:
                continue
            try:
                chosen[i] = row.choose(self._logits[i : i + 1])
            except Exception as error:  # noqa: BLE001 - one row's processor failing ends only that row
                row.error = error
        return chosen

    def _decode_step(self) -> None:
        assert self._mask is not None
        ids = torch.tensor([[row.generated[-1]] for row in self.rows], dtype=torch.long)
        positions = torch.tensor([[row.next_position] for row in self.rows], dtype=torch.long)
        for row in self.rows:
            row.next_position += 1
        self._mask = F.pad(self._mask, (0, 1), value=1)
        output = self._forward(ids, self._mask, positions, cache=self._cache)
        self._cache = self._output_cache(output)
        self._logits = output.logits[:, -1, :].float()

    def _evict(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self._cache = self._mask = self._logits = None
            self._handle.remove()
            return
        assert self._mask is not None and self._logits is not None
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        self._logits = self._logits[index]
        if self.joinable:
            # Drop leading columns that are padding for every remaining row (left behind by long prompts
            # that have gone), so attention does not keep paying for them.
            empty = int((self._mask.sum(0) == 0).long().cumprod(0).sum())
            if empty:
                for layer in self._cache.layers:
                    layer.keys = layer.keys[..., empty:, :]
                    layer.values = layer.values[..., empty:, :]
                self._mask = self._mask[:, empty:]
        self._rehook()

    def _rehook(self) -> None:
        """Replace the decode hooks with ones for the current rows (one new token per row per pass)."""
        self._handle.remove()
        self._handle = register_offsets(
            self.model,
            stack_row_offsets([row.request.offsets for row in self.rows]),
            positions="all",  # one position per row per decode pass: both policies steer it
            layer_path=self.layer_path,
        )

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ) -> Any:
        kwargs: dict[str, Any] = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "use_cache": True,
        }
        if cache is not None:
            kwargs[self._cache_argument] = cache
        if self._takes_positions:
            kwargs["position_ids"] = positions.to(self.device)
        if self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1  # only the last position's logits are needed
        # no_grad, not inference_mode: logits processors change scores in place outside this block.
        with torch.no_grad():
            return self.model(**kwargs)

    @staticmethod
    def _output_cache(output: Any) -> Any:
        cache = getattr(output, "cache", None)
        return cache if cache is not None else output.past_key_values

    # -- teardown -------------------------------------------------------------------------------------
    def abort(self) -> list[Ticket]:
        """Drop every row (after an error) and return their tickets, admitted or being admitted."""
        tickets = list({id(row): row.ticket for row in [*self.rows, *self._admitting]}.values())
        self.rows, self._admitting = [], []
        self.close()
        return tickets

    def close(self) -> None:
        """Remove the hooks and free the cache; safe to call twice."""
        self._handle.remove()
        self._cache = self._mask = self._logits = None


def _left_pad(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """Pad ``(batch, heads, seq, dim)`` with ``size`` zero positions on the left of ``seq``."""
    return F.pad(tensor, (0, 0, size, 0)) if size else tensor
