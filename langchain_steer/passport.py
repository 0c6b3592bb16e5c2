"""A vector's passport: which model, tokenizer, chat template and hook point its directions were made for.

A direction is a list of numbers that only means something in the residual stream of the model it was
measured in, read at the point where it was measured. Two models of the same width, or the same model
under another tokenizer or chat template, would take the numbers without complaint and steer nonsense. The
passport records what a vector was made for, and :meth:`Passport.mismatches` says what differs from a
live model, so that :meth:`~langchain_steer.vectors.SteeringVector.validate_for` can refuse a foreign
vector unless the caller overrides the check.

Fields that identify the model (architecture, hidden size, layer count, the tokenizer's and the chat
template's fingerprints, the hook point and the layer numbering) must match. The residual norms per layer,
measured at extraction, are kept for calibration and diagnostics; they are not compared, because the same
model on another device or dtype measures slightly different norms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

from torch import nn

from langchain_steer.layers import find_layers, hidden_size

__all__ = ["HOOK_POINT", "LAYER_NUMBERING", "ForeignVectorError", "Passport", "tokenizer_fingerprints"]

HOOK_POINT = "decoder_block_output"
"""Where directions are read at extraction and added when steering: the hidden states a decoder block
outputs (the residual stream after block ``k``)."""

LAYER_NUMBERING = "decoder_blocks_from_0"
"""Layer ``k`` is entry ``k`` of the model's decoder-block list, counting from 0 (no embedding layer)."""

_fingerprints: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()
_fingerprints_lock = threading.Lock()


class ForeignVectorError(ValueError):
    """A vector's passport says it was made for another model, tokenizer or chat template."""


def _sha256(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def tokenizer_fingerprints(tokenizer: Any) -> tuple[str, str]:
    """``(tokenizer, chat template)`` fingerprints, cached per tokenizer object.

    They are the SHA-256 of the vocabulary and special tokens, and of the chat template text (``""`` when
    the tokenizer has none).
    """
    with _fingerprints_lock:
        cached = _fingerprints.get(tokenizer)
    if cached is not None:
        return cached
    vocabulary = sorted(tokenizer.get_vocab().items())
    special = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))
    template = getattr(tokenizer, "chat_template", None) or ""
    result = (_sha256([vocabulary, special]), _sha256(template) if template else "")
    try:
        with _fingerprints_lock:
            _fingerprints[tokenizer] = result
    except TypeError:  # an object that cannot be weakly referenced: just not cached
        pass
    return result


@dataclasses.dataclass(frozen=True)
class Passport:
    """What a steering vector was made for.

    Attributes:
        model_id: the model's name or path at extraction (informative: a local copy of the same model has
            another path, so it is not compared).
        architecture: ``config.model_type``, e.g. ``"llama"``.
        hidden_size: the width of the residual stream.
        layer_count: how many decoder blocks the model has.
        tokenizer: SHA-256 of the tokenizer's vocabulary and special tokens.
        chat_template: SHA-256 of the chat template (``""``: none).
        hook_point: where directions are read and added (:data:`HOOK_POINT`).
        layer_numbering: how layers are counted (:data:`LAYER_NUMBERING`).
        residual_norms: layer → median norm of the residual stream there, measured at extraction.
    """

    model_id: str
    architecture: str
    hidden_size: int
    layer_count: int
    tokenizer: str
    chat_template: str
    hook_point: str = HOOK_POINT
    layer_numbering: str = LAYER_NUMBERING
    residual_norms: Mapping[int, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "residual_norms", {int(k): float(v) for k, v in self.residual_norms.items()}
        )

    @classmethod
    def of(
        cls,
        model: nn.Module,
        tokenizer: Any,
        *,
        layer_path: str | None = None,
        residual_norms: Mapping[int, float] | None = None,
    ) -> Passport:
        """The passport of a live ``model`` and its ``tokenizer``."""
        config = getattr(model, "config", None)
        token_print, template_print = tokenizer_fingerprints(tokenizer)
        return cls(
            model_id=str(getattr(config, "name_or_path", "") or ""),
            architecture=str(getattr(config, "model_type", "") or type(model).__name__),
            hidden_size=hidden_size(model),
            layer_count=len(find_layers(model, layer_path)),
            tokenizer=token_print,
            chat_template=template_print,
            residual_norms=dict(residual_norms or {}),
        )

    def mismatches(self, other: Passport) -> list[str]:
        """What differs between this passport and ``other``, one phrase per field (empty: they match)."""
        found = []
        for name in ("architecture", "hidden_size", "layer_count", "hook_point", "layer_numbering"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name} {mine!r} vs {theirs!r}")
        for name in ("tokenizer", "chat_template"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name} fingerprint {mine[:12] or 'none'} vs {theirs[:12] or 'none'}")
        return found

    def check(
        self,
        model: nn.Module,
        tokenizer: Any = None,
        *,
        layer_path: str | None = None,
        vector: str = "",
        allow_foreign: bool = False,
    ) -> None:
        """Refuse (or, with ``allow_foreign``, warn about) a ``model`` this passport does not describe.

        Without a ``tokenizer`` only what the model itself tells is compared: architecture, hidden size
        and layer count.

        Raises:
            ForeignVectorError: something differs and ``allow_foreign`` is false; the message lists it.
        """
        if tokenizer is not None:
            found = self.mismatches(Passport.of(model, tokenizer, layer_path=layer_path))
        else:
            kind = str(getattr(getattr(model, "config", None), "model_type", "") or self.architecture)
            live = (kind, hidden_size(model), len(find_layers(model, layer_path)))
            wanted = (self.architecture, self.hidden_size, self.layer_count)
            found = [] if live == wanted else [f"architecture, hidden size, layers {wanted} vs {live}"]
        if not found:
            return
        message = (
            f"Steering vector {vector or '<unnamed>'!r} was made for {self.model_id or 'another model'!r}, "
            f"not this one: {'; '.join(found)}."
        )
        if not allow_foreign:
            raise ForeignVectorError(
                f"{message} Extract a vector for this model (`langchain-steer extract`), or pass "
                "allow_foreign=True if you know it transfers."
            )
        warnings.warn(f"{message} Using it anyway (allow_foreign=True).", stacklevel=3)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a vector file's metadata."""
        data = dataclasses.asdict(self)
        data["residual_norms"] = {str(k): v for k, v in self.residual_norms.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passport:
        """Read :meth:`to_dict`'s form.

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        try:
            return cls(
                model_id=str(data.get("model_id", "")),
                architecture=str(data["architecture"]),
                hidden_size=int(data["hidden_size"]),
                layer_count=int(data["layer_count"]),
                tokenizer=str(data["tokenizer"]),
                chat_template=str(data.get("chat_template", "")),
                hook_point=str(data.get("hook_point", HOOK_POINT)),
                layer_numbering=str(data.get("layer_numbering", LAYER_NUMBERING)),
                residual_norms=dict(data.get("residual_norms") or {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the vector's passport is malformed: {error!r}") from error
