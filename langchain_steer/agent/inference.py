"""Reading a user's preferences from the conversation, and the rule that updates them turn by turn.

An **inferencer** reads user turns and returns, for each one, a :class:`Reading`: a value in [−1, 1] per
dimension (0: nothing expressed), which dimensions the user declared irrelevant ("price doesn't matter"),
and whether the turn is feedback on the previous answer ("no, cheaper!"). Two ship with the package:

* :class:`EmbeddingInferencer` (the default): all-MiniLM-L6-v2 embeddings plus word n-grams, and a small
  classifier trained on labelled utterances (:mod:`langchain_steer.agent.classifier`). Offline, no API key,
  a few milliseconds per turn on a CPU.
* :class:`LLMInferencer`: any LangChain chat model with ``with_structured_output``.

Any object with a ``read(messages) -> list[Reading]`` method works (see :class:`Inferencer`).

**The update rule** (:func:`update_preferences`) folds one reading into the current preferences, dimension by
dimension, in this order:

1. *Cleared*: the user declared the dimension irrelevant → it goes back to 0.
2. *Nothing expressed* (``|value| < 0.2``) → unchanged: small talk and unrelated turns leave preferences
   alone.
3. *Feedback* on the last answer moves the value one step (0.5) in the asked direction, starting from 0 if it
   was on the other side: luxury (+1) and "no, cheaper!" give −0.5, a second "cheaper" gives −1.
4. *A statement* is weighted by its confidence ``w = min(1, |value| / 0.6)``: the new value is
   ``(1 − w) · old + w · value``. A clear statement (``|value| ≥ 0.6``) replaces the old value outright, so a
   change of mind wins ("money is tight… actually my boss is paying, let's go all out" ends at luxury); a
   hesitant one only moves it part of the way.

:func:`infer_preferences` applies the rule over every user turn of a conversation, from all zeros.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_steer.dimensions import DIMENSIONS

__all__ = [
    "EXPRESSED",
    "EmbeddingInferencer",
    "Inferencer",
    "LLMInferencer",
    "Reading",
    "default_inferencer",
    "infer_preferences",
    "update_preferences",
    "user_turns",
]

EXPRESSED = 0.2
"""A reading weaker than this expresses nothing."""
FULL_CONFIDENCE = 0.6
"""A reading at least this strong replaces the old value outright."""
FEEDBACK_STEP = 0.5
"""How far one piece of feedback ("no, cheaper!") moves a value."""


@dataclass(frozen=True)
class Reading:
    """What one user turn says about the user's preferences.

    Attributes:
        values: dimension → value in [−1, 1]; 0 (or a missing key) means nothing expressed.
        cleared: dimensions the user declared irrelevant in this turn.
        feedback: whether the turn reacts to the previous answer ("too fancy", "something earlier").
        evidence: dimension → the user's words that expressed it (the clause that gave the strongest
            reading, or the whole turn), so that an interface can say why a value moved.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    cleared: frozenset[str] = frozenset()
    feedback: bool = False
    evidence: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Inferencer(Protocol):
    """Reads preferences from user turns.

    ``read`` gets the conversation so far and returns one :class:`Reading` per **user** turn, in order. It may
    use the assistant turns as context (feedback refers to them).
    """

    def read(self, messages: Sequence[BaseMessage]) -> list[Reading]:
        """One reading per user turn of ``messages``."""
        ...


def user_turns(messages: Sequence[BaseMessage | str]) -> list[BaseMessage]:
    """Normalise ``messages``: plain strings become user turns; returns the whole conversation as messages."""
    normalised: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, str):
            normalised.append(HumanMessage(message))
        elif isinstance(message, BaseMessage):
            normalised.append(message)
        else:
            raise TypeError(
                f"Expected LangChain messages or strings, not {type(message).__name__}."
            )
    return normalised


def _is_user(message: BaseMessage) -> bool:
    return message.type == "human"


def update_preferences(
    current: Mapping[str, float], reading: Reading, dimensions: Sequence[str] = DIMENSIONS
) -> dict[str, float]:
    """Apply one reading to ``current`` (see the module docstring for the rule); returns a new mapping."""
    updated = {name: float(current.get(name, 0.0)) for name in dimensions}
    for name in dimensions:
        old = updated[name]
        value = float(reading.values.get(name, 0.0))
        if name in reading.cleared:
            updated[name] = 0.0
        elif math.isnan(value) or abs(value) < EXPRESSED:
            continue
        elif reading.feedback:
            sign = math.copysign(1.0, value)
            updated[name] = sign * min(1.0, max(sign * old, 0.0) + FEEDBACK_STEP)
        else:
            weight = min(1.0, abs(value) / FULL_CONFIDENCE)
            updated[name] = (1 - weight) * old + weight * max(-1.0, min(1.0, value))
    return {name: round(value, 4) for name, value in updated.items()}


_CLAUSE_BREAK = re.compile(r"(?<=[.!?;])\s+|\s+but\s+|\s+though\s+|,\s*(?:though|however)\b")


def clauses(text: str) -> list[str]:
    """Split a turn into clauses at sentence ends and at "but" / "though" (parts of two words or more)."""
    parts = [p.strip() for p in _CLAUSE_BREAK.split(text) if p and len(p.split()) >= 2]
    return parts if len(parts) > 1 else []


class EmbeddingInferencer:
    """The default, offline inferencer: MiniLM sentence embeddings and n-grams, and the shipped classifier.

    Each user turn is read whole. With ``by_clause=True``, a turn with several clauses ("that's the famous
    one, but I'd rather somewhere locals go") is also read clause by clause, and for each dimension the
    strongest reading wins. On the development set this changed nothing on expressed dimensions and cost
    0.7 points on unexpressed ones, so it is off by default.

    Args:
        weights: classifier weights (default: the shipped ones, loaded on first use).
        feedback_threshold: probability above which a turn counts as feedback.
        clear_threshold: probability above which a dimension counts as declared irrelevant.
        by_clause: also read multi-clause turns clause by clause (see above; off by default).
    """

    def __init__(
        self,
        weights: Any = None,
        *,
        feedback_threshold: float = 0.5,
        clear_threshold: float = 0.5,
        by_clause: bool = False,
    ) -> None:
        self._weights = weights
        self._lock = threading.Lock()
        self.feedback_threshold = feedback_threshold
        self.clear_threshold = clear_threshold
        self.by_clause = by_clause

    @property
    def weights(self) -> Any:
        """The classifier weights, loaded on first use."""
        with self._lock:
            if self._weights is None:
                from langchain_steer.agent.classifier import load_weights

                self._weights = load_weights()
            return self._weights

    def read(self, messages: Sequence[BaseMessage]) -> list[Reading]:
        """Embed every user turn (and its clauses) in one batch and classify them."""
        from langchain_steer.agent.classifier import predict

        turns = [_text(m) for m in messages if _is_user(m)]
        if not turns:
            return []
        weights = self.weights
        texts: list[str] = []
        spans: list[
            tuple[int, range]
        ] = []  # per turn: the row of the whole turn, the rows of its clauses
        for turn in turns:
            pieces = clauses(turn) if self.by_clause else []
            spans.append((len(texts), range(len(texts) + 1, len(texts) + 1 + len(pieces))))
            texts.extend([turn, *pieces])
        values, feedback, cleared = predict(weights, weights.features(texts))
        readings = []
        for whole, parts in spans:
            turn_values = {}
            evidence = {}
            for j, name in enumerate(weights.dimensions):
                rows = [whole, *parts]
                strengths = [abs(float(values[row, j])) for row in rows]
                best = rows[strengths.index(max(strengths))]  # ties: the whole turn
                turn_values[name] = float(values[best, j])
                evidence[name] = texts[best]
            readings.append(
                Reading(
                    values=turn_values,
                    evidence=evidence,
                    cleared=frozenset(
                        d
                        for j, d in enumerate(weights.dimensions)
                        if cleared[whole, j] > self.clear_threshold
                    ),
                    feedback=bool(feedback[whole] > self.feedback_threshold),
                )
            )
        return readings


class LLMInferencer:
    """Reads preferences with any LangChain chat model that supports ``with_structured_output``.

    Each user turn is shown to the model with the previous assistant answer (for feedback), and the model
    fills a schema with one value per dimension, the cleared dimensions and a feedback flag. Values are
    clipped to [−1, 1].

    Args:
        chat_model: e.g. ``SteeredChatModel()``, ``ChatOpenAI(...)``, ``ChatOllama(...)``.
        dimensions: the dimensions to ask about (default: the five built-in ones).
        poles: ``{dimension: (negative pole, positive pole)}``, the names the model rates each scale by.
            A built-in dimension defaults to its own poles; a custom one needs them here.

    Raises:
        ValueError: a custom dimension without its poles.
    """

    def __init__(
        self,
        chat_model: Any,
        dimensions: Sequence[str] = DIMENSIONS,
        poles: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        from langchain_steer.dimensions import load_dimension

        self.dimensions = list(dimensions)
        self._poles = {}
        for name in self.dimensions:
            if poles and name in poles:
                self._poles[name] = (str(poles[name][0]), str(poles[name][1]))
            elif name in DIMENSIONS:
                self._poles[name] = load_dimension(name).poles
            else:  # "-1 = negative, +1 = positive" would leave the model guessing what the scale is
                raise ValueError(
                    f"LLMInferencer needs the poles of the custom dimension {name!r}: "
                    f"poles={{{name!r}: ('low pole', 'high pole')}}."
                )
        self._structured = chat_model.with_structured_output(self._schema())

    def _schema(self) -> dict[str, Any]:
        properties: dict[str, Any] = {
            name: {
                "type": "number",
                "description": f"-1 = {low}, +1 = {high}, 0 = not mentioned",
            }
            for name, (low, high) in self._poles.items()
        }
        properties["cleared"] = {
            "type": "array",
            "items": {"type": "string", "enum": self.dimensions},
            "description": "dimensions the user says do not matter",
        }
        properties["feedback"] = {
            "type": "boolean",
            "description": "true if the user reacts to the previous answer",
        }
        return {
            "title": "PreferenceReading",
            "description": "The user's preferences expressed in their last message.",
            "type": "object",
            "properties": properties,
            "required": [*self.dimensions, "cleared", "feedback"],
        }

    def _prompt(self, previous: str | None, text: str) -> str:
        scale = "; ".join(f"{n}: -1 {lo}, +1 {hi}" for n, (lo, hi) in self._poles.items())
        context = f"The assistant had answered: {previous!r}\n" if previous else ""
        return (
            "Rate the preferences this user expresses, each from -1 to 1, 0 if not expressed. "
            f"Scales: {scale}.\n{context}User: {text!r}"
        )

    def read(self, messages: Sequence[BaseMessage]) -> list[Reading]:
        """One structured-output call per user turn."""
        readings = []
        previous: str | None = None
        for message in messages:
            if isinstance(message, AIMessage):
                previous = _text(message)
                continue
            if not _is_user(message):
                continue
            text = _text(message)
            raw = self._structured.invoke(self._prompt(previous, text))
            reading = self._reading(raw)
            readings.append(replace(reading, evidence={name: text for name in reading.values}))
        return readings

    def _reading(self, raw: Any) -> Reading:
        data = raw if isinstance(raw, Mapping) else getattr(raw, "model_dump", lambda: {})()
        values = {}
        for name in self.dimensions:
            try:
                value = float(data.get(name, 0.0))
            except (TypeError, ValueError):
                value = 0.0
            values[name] = 0.0 if math.isnan(value) else max(-1.0, min(1.0, value))
        cleared = frozenset(d for d in data.get("cleared") or [] if d in self.dimensions)
        return Reading(values=values, cleared=cleared, feedback=bool(data.get("feedback", False)))


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(
        part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content
    )


_default: EmbeddingInferencer | None = None
_default_lock = threading.Lock()


def default_inferencer() -> EmbeddingInferencer:
    """The process-wide default inferencer (an :class:`EmbeddingInferencer`)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EmbeddingInferencer()
        return _default


def infer_preferences(
    messages: Sequence[BaseMessage | str],
    dimensions: Sequence[str] | None = None,
    *,
    inferencer: Inferencer | None = None,
) -> dict[str, float]:
    """Infer the user's preferences from a conversation.

    Args:
        messages: LangChain messages, or plain strings taken as user turns.
        dimensions: which dimensions to return (default: all five built-in ones).
        inferencer: how to read turns (default: the offline :class:`EmbeddingInferencer`).

    Returns:
        A value in [−1, 1] for every dimension; 0 means nothing was expressed. The value is the result of
        applying :func:`update_preferences` to every user turn in order.

    Example:
        >>> infer_preferences(["Money is tight this month.", "We'll bring our toddler."])  # doctest: +SKIP
        {'cost': -0.93, 'ambiance': 0.0, 'age': -0.95, 'time': 0.0, 'culture': 0.0}
    """
    names = list(dimensions or DIMENSIONS)
    preferences = dict.fromkeys(names, 0.0)
    for reading in (inferencer or default_inferencer()).read(user_turns(messages)):
        preferences = update_preferences(preferences, reading, names)
    return preferences
