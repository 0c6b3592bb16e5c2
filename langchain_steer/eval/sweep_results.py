"""The data of a sweep: pole corpora, scored replies, per-strength summaries and the whole result.

Plain frozen dataclasses with JSON round trips (non-finite numbers are written as ``null``), produced by
the runner in :mod:`langchain_steer.eval.sweep` and read by :mod:`langchain_steer.eval.report`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

from langchain_steer.dimensions import Dimension, load_dimension

__all__ = ["Generation", "PoleCorpus", "Scale", "StrengthSummary", "SweepResult"]

Scale = Literal["strength", "norm"]
"""The axis of a sweep's grid: multiples of the vector's ranges, or absolute residual-stream norms."""


@dataclasses.dataclass(frozen=True)
class PoleCorpus:
    """Texts written at each pole of a dimension, used as the reference points of the effect metric.

    Attributes:
        negative: texts of the negative pole (e.g. budget replies).
        positive: texts of the positive pole (e.g. luxury replies).
    """

    negative: tuple[str, ...]
    positive: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.negative or not self.positive:
            raise ValueError("A pole corpus needs at least one text at each pole.")
        object.__setattr__(self, "negative", tuple(self.negative))
        object.__setattr__(self, "positive", tuple(self.positive))

    @classmethod
    def from_dimension(
        cls, dimension: str | Dimension, split: Literal["train", "test", "all", "held_out"] = "test"
    ) -> PoleCorpus:
        """The replies of a dimension's ``split``; ``test`` is held out from extraction.

        ``dimension`` is a built-in dimension's name or a parsed examples file
        (:func:`~langchain_steer.dimensions.read_examples`). ``"held_out"`` is ``test``, or every reply
        of a file that has no ``test`` split.
        """
        data = load_dimension(dimension) if isinstance(dimension, str) else dimension
        negative, positive = data.held_out() if split == "held_out" else data.examples(split)
        return cls(tuple(e.response for e in negative), tuple(e.response for e in positive))


@dataclasses.dataclass(frozen=True)
class Generation:
    """One scored reply.

    Attributes:
        prompt: the user request.
        strengths: dimension → strength the reply was generated with (absent means 0).
        text: the reply, stripped.
        tokens: its length in tokens of the steered model's tokenizer.
        effects: dimension → relative similarity to that dimension's poles.
        nll: mean negative log-likelihood per reply token under the unsteered model (None when empty).
        reference_nll: the same under the reference model, if one was given.
    """

    prompt: str
    strengths: dict[str, float]
    text: str
    tokens: int
    effects: dict[str, float]
    nll: float | None
    reference_nll: float | None = None


@dataclasses.dataclass(frozen=True)
class StrengthSummary:
    """The statistics of all replies at one strength.

    ``ppl`` is the geometric mean of the replies' perplexities (``exp`` of their mean per-token NLL), so
    each reply counts once whatever its length. Intervals are percentile bootstraps over replies.
    """

    strength: float
    n: int
    empty: int
    effect: float
    effect_ci: tuple[float, float]
    ppl: float
    ppl_ci: tuple[float, float]
    ppl_ratio: float
    pne: float
    mean_tokens: float
    reference_ppl: float | None = None
    reference_ppl_ci: tuple[float, float] | None = None
    reference_ppl_ratio: float | None = None


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Everything a sweep measured, JSON-serialisable with :meth:`to_dict`.

    Attributes:
        dimension: the swept dimension.
        poles: ``(negative, positive)`` pole names.
        model_id: the steered model.
        vector: the vector's layers, method and functional range at sweep time.
        scale: ``"strength"`` (multiples of the functional range) or ``"norm"`` (absolute norms).
        summaries: one :class:`StrengthSummary` per strength, in increasing order.
        spearman: ρ of the mean effect against strength, over the per-strength means.
        spearman_samples: ρ of effect against strength over every reply.
        samples: every scored reply.
        settings: prompts, max_new_tokens, reference model, seconds taken...
    """

    dimension: str
    poles: tuple[str, str]
    model_id: str
    vector: dict[str, Any]
    scale: Scale
    summaries: list[StrengthSummary]
    spearman: float
    spearman_samples: float
    samples: list[Generation]
    settings: dict[str, Any]

    @property
    def strengths(self) -> list[float]:
        """The swept strengths, in increasing order."""
        return [s.strength for s in self.summaries]

    def at(self, strength: float) -> StrengthSummary:
        """The summary at ``strength``.

        Raises:
            KeyError: the sweep did not include it.
        """
        for summary in self.summaries:
            if math.isclose(summary.strength, strength, abs_tol=1e-9):
                return summary
        raise KeyError(f"Strength {strength:g} is not in this sweep ({self.strengths}).")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the schema of ``sweep.json``)."""
        return {
            "schema": "langchain-steer/sweep@1",
            "dimension": self.dimension,
            "poles": list(self.poles),
            "model_id": self.model_id,
            "vector": dict(self.vector),
            "scale": self.scale,
            "spearman": _finite(self.spearman),
            "spearman_samples": _finite(self.spearman_samples),
            "summaries": [_jsonable(dataclasses.asdict(s)) for s in self.summaries],
            "samples": [_jsonable(dataclasses.asdict(s)) for s in self.samples],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepResult:
        """Rebuild a result from :meth:`to_dict`'s output (for example a loaded ``sweep.json``)."""
        summaries = []
        for raw in data["summaries"]:
            fields = dict(raw)
            for key in ("effect_ci", "ppl_ci", "reference_ppl_ci"):
                if fields.get(key) is not None:
                    fields[key] = tuple(_nan(v) for v in fields[key])
            for key in ("effect", "ppl", "ppl_ratio", "pne"):  # NaN was written as null
                fields[key] = _nan(fields[key])
            summaries.append(StrengthSummary(**fields))
        return cls(
            dimension=data["dimension"],
            poles=(data["poles"][0], data["poles"][1]),
            model_id=data["model_id"],
            vector=dict(data["vector"]),
            scale=data["scale"],
            summaries=summaries,
            spearman=_nan(data["spearman"]),
            spearman_samples=_nan(data["spearman_samples"]),
            samples=[Generation(**raw) for raw in data["samples"]],
            settings=dict(data["settings"]),
        )


def _finite(value: Any) -> Any:
    """JSON has no NaN: write it as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _nan(value: Any) -> Any:
    return math.nan if value is None else value


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: [_finite(x) for x in v] if isinstance(v, tuple | list) else _finite(v)
        for k, v in record.items()
    }
