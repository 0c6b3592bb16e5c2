"""Examples files: the one parser of the contrastive-examples format, and the types it gives.

An examples file is a JSON object; the built-in dimensions (``data/<name>.json``) and a custom dimension
passed with ``--examples`` share the format (``docs/engine.md``)::

    {
      "name": "cost", "negative": "budget", "positive": "luxury",
      "examples": [{"prompt": "...", "negative": "...", "positive": "...", "split": "train"}, ...],
      "pole_prompts": {"negative": "I'm on a tight budget.", "positive": "Money is no object."},
      "pole_words": {"negative": ["cheap", ...], "positive": ["luxury", ...]}
    }

Only ``examples`` is required. ``split`` is ``"train"`` (extraction, the default) or ``"test"`` (held out
for measurement). The built-in files add ``description``, ``demo_prompt``, ``eval_prompts`` and
``pole_descriptions``; see :class:`Dimension`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = ["Dimension", "Example", "Split", "read_examples"]

Split = Literal["train", "test", "all"]

_FORMAT_HINT = "see docs/engine.md for the format"
_KNOWN_KEYS = frozenset(
    "about name negative positive description demo_prompt pole_words eval_prompts examples "
    "pole_prompts pole_descriptions".split()
)


@dataclasses.dataclass(frozen=True)
class Example:
    """A user request and an assistant reply written at one pole of a preference."""

    prompt: str
    response: str


@dataclasses.dataclass(frozen=True)
class Dimension:
    """A preference dimension and its contrastive data, as an examples file describes it.

    Attributes:
        name: e.g. ``"cost"``.
        negative: name of the pole at strength -1, e.g. ``"budget"``.
        positive: name of the pole at strength +1, e.g. ``"luxury"``.
        description: one sentence (``""`` when the file has none).
        demo_prompt: the neutral request ``langchain-steer demo`` answers.
        pole_words: ``{"negative": [...], "positive": [...]}`` words and phrases that mark each pole: the
            lexicon of :class:`langchain_steer.eval.judge.PoleJudge` (``{}``: none given).
        eval_prompts: topical requests for the embedding-effect sweeps (``eval sweep``).
        pairs: ``{"task", "prompt", "negative", "positive", "split"}`` records; ``split`` is always set.
        pole_prompts: ``{"negative": ..., "positive": ...}``: what a user says to ask for each pole
            ("I'm on a tight budget, ..."), prepended to a request for the prompted-pole baseline
            (``{}``: none given, so no range calibration).
        pole_descriptions: ``{"negative": [...], "positive": [...]}`` sentences describing each pole.
    """

    name: str
    negative: str
    positive: str
    description: str = ""
    demo_prompt: str = ""
    pole_words: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    eval_prompts: list[str] = dataclasses.field(default_factory=list)
    pairs: list[dict[str, str]] = dataclasses.field(default_factory=list)
    pole_prompts: dict[str, str] = dataclasses.field(default_factory=dict)
    pole_descriptions: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    @property
    def poles(self) -> tuple[str, str]:
        """``(negative, positive)``."""
        return (self.negative, self.positive)

    def examples(self, split: Split = "train") -> tuple[list[Example], list[Example]]:
        """Return ``(negative examples, positive examples)`` of a split."""
        chosen = [p for p in self.pairs if split == "all" or p["split"] == split]
        negative = [Example(p["prompt"], p["negative"]) for p in chosen]
        positive = [Example(p["prompt"], p["positive"]) for p in chosen]
        return negative, positive

    def held_out(self) -> tuple[list[Example], list[Example]]:
        """The ``test`` examples; every example when the file has no ``test`` split (a small custom file)."""
        negative, positive = self.examples("test")
        return (negative, positive) if negative else self.examples("all")

    def sweep_prompts(self, count: int) -> list[str]:
        """``count`` requests for an embedding sweep, evenly spaced over :attr:`eval_prompts`.

        A file without ``eval_prompts`` uses the requests of its held-out examples. Evenly spaced picks
        keep the tasks (gifts, travel, food, recipes) balanced in a subset.
        """
        prompts = self.eval_prompts or [e.prompt for e in self.held_out()[0]]
        count = min(count, len(prompts))
        return [prompts[(i * len(prompts)) // count] for i in range(count)]


class _Readable(Protocol):
    """A file, a path or a package resource (``importlib.resources`` ``Traversable``)."""

    @property
    def name(self) -> str: ...

    def read_text(self, encoding: str | None = None) -> str: ...


def read_examples(
    source: str | os.PathLike[str] | _Readable | Mapping[str, Any], *, name: str | None = None
) -> Dimension:
    """Parse an examples file (or its already-loaded JSON object) into a :class:`Dimension`.

    Args:
        source: a path, a package resource, or the decoded JSON object.
        name: the dimension's name (default: the file's ``name``, else the file's stem, else ``"custom"``).

    Raises:
        FileNotFoundError: no file at ``source``.
        ValueError: the file is not valid JSON or not in the format; the message names the file and the
            entry at fault, and says what it should be.
    """
    if isinstance(source, Mapping):
        raw: Any = source
        label, stem = "the examples", "custom"
    else:
        path: _Readable = Path(source) if isinstance(source, (str, os.PathLike)) else source
        label, stem = str(path), Path(path.name).stem
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"No examples file at {path}.") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{label} is not valid JSON ({error}); {_FORMAT_HINT}.") from error
    if (
        not isinstance(raw, Mapping)
        or not isinstance(raw.get("examples"), list)
        or not raw["examples"]
    ):
        raise ValueError(
            f"{label} is not an examples file: it needs a non-empty 'examples' list of "
            f"{{'prompt', 'negative', 'positive'}} records; {_FORMAT_HINT}."
        )
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        warnings.warn(
            f"{label}: unknown keys {unknown} are ignored (known: {', '.join(sorted(_KNOWN_KEYS))}).",
            stacklevel=2,
        )
    pairs = [_pair(label, i, pair) for i, pair in enumerate(raw["examples"])]
    return Dimension(
        name=name or _text(label, raw, "name", stem),
        negative=_text(label, raw, "negative", "negative"),
        positive=_text(label, raw, "positive", "positive"),
        description=_text(label, raw, "description", ""),
        demo_prompt=_text(label, raw, "demo_prompt", ""),
        pole_words=_per_pole(label, raw, "pole_words", list),
        eval_prompts=_texts(label, raw.get("eval_prompts", []), "'eval_prompts'"),
        pairs=pairs,
        pole_prompts=_per_pole(label, raw, "pole_prompts", str),
        pole_descriptions=_per_pole(label, raw, "pole_descriptions", list),
    )


def _pair(label: str, index: int, pair: Any) -> dict[str, str]:
    where = f"{label}: examples[{index}]"
    if not isinstance(pair, Mapping):
        raise ValueError(f"{where} is {pair!r}, not a {{'prompt', 'negative', 'positive'}} record.")
    for key in ("prompt", "negative", "positive"):
        if not isinstance(pair.get(key), str):
            found = "missing" if key not in pair else f"{type(pair[key]).__name__}, not text"
            raise ValueError(
                f"{where}: {key!r} is {found}; each example needs 'prompt', 'negative' and "
                f"'positive' strings; {_FORMAT_HINT}."
            )
    split = pair.get("split", "train")
    if split not in ("train", "test"):
        raise ValueError(f"{where}: 'split' is {split!r}; use 'train' (the default) or 'test'.")
    return {**pair, "split": split}


def _text(label: str, raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{label}: {key!r} must be text, not {value!r}.")
    return value


def _texts(label: str, value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{label}: {what} must be a list of strings, not {value!r}.")
    return list(value)


def _per_pole(label: str, raw: Mapping[str, Any], key: str, kind: type) -> Any:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or set(value) != {"negative", "positive"}:
        raise ValueError(
            f"{label}: {key!r} must be {{'negative': ..., 'positive': ...}}, not {value!r}."
        )
    if kind is str:
        return {pole: _text(label, value, pole, "") for pole in ("negative", "positive")}
    return {
        pole: _texts(label, value[pole], f"{key}[{pole!r}]") for pole in ("negative", "positive")
    }
