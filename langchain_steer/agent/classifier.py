"""The offline preference classifier: sentence embeddings and word n-grams → softmax regressions.

Each user turn becomes one feature vector: its all-MiniLM-L6-v2 embedding (384 numbers, for meaning and
implicit cues) followed by binary word unigrams and bigrams from a fixed vocabulary (for the exact cue words
that an averaged sentence embedding blurs, such as "cheap" next to "sushi" and "toddler"). For each
dimension, a four-way classifier (negative pole / nothing / positive pole / declared irrelevant)
reads the embedding of one user turn; the turn's value is ``P(positive) − P(negative)``, in [−1, 1], and
``P(irrelevant)`` says whether the user cleared the dimension ("price doesn't matter"). One more, binary head
says whether the turn is feedback on the previous answer ("no, cheaper!"), which the update rule treats as a
relative move rather than a statement (see :mod:`langchain_steer.agent.inference`).

The weights (a few MB) ship in ``agent/data/preference_classifier.safetensors``. They were trained by
:func:`train` on ``agent/data/utterances*.jsonl``: utterances written and labelled for this
package, covering explicit and implicit cues, negation, several dimensions at once, feedback, neutral
requests and small talk. Retrain with::

    python -m langchain_steer.agent.classifier
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from langchain_steer.dimensions import DIMENSIONS
from langchain_steer.embeddings import embed

__all__ = [
    "ClassifierWeights",
    "build_vocabulary",
    "grams",
    "lexical_features",
    "load_weights",
    "predict",
    "read_utterances",
    "train",
]

DATA = resources.files("langchain_steer.agent").joinpath("data")
WEIGHTS_FILE = "preference_classifier.safetensors"
UTTERANCES_FILE = "utterances.jsonl"


LEXICAL_SCALE = 0.5
"""Weight of the n-gram features next to the unit-length embedding."""
MIN_GRAM_COUNT = 2
"""An n-gram joins the vocabulary when it occurs in at least this many training utterances."""


def grams(text: str) -> set[str]:
    """The lower-cased word unigrams and bigrams of ``text``."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


@dataclass(frozen=True)
class ClassifierWeights:
    """Per-dimension softmax regressions plus the feedback head, over embeddings and n-grams."""

    dimensions: tuple[str, ...]
    vocabulary: tuple[str, ...]
    weight: (
        torch.Tensor
    )  # (dimensions, 4, features): negative, nothing, positive, declared irrelevant
    bias: torch.Tensor  # (dimensions, 4)
    feedback_weight: torch.Tensor  # (features,)
    feedback_bias: torch.Tensor  # ()

    def save(self, path: str | Path) -> None:
        """Write the weights as safetensors, with the dimension names in the metadata."""
        from safetensors.torch import save_file

        save_file(
            {
                "weight": self.weight.contiguous(),
                "bias": self.bias.contiguous(),
                "feedback_weight": self.feedback_weight.contiguous(),
                "feedback_bias": self.feedback_bias.reshape(1).contiguous(),
            },
            str(path),
            metadata={
                "dimensions": json.dumps(list(self.dimensions)),
                "vocabulary": json.dumps(list(self.vocabulary)),
            },
        )

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``texts`` and append their n-gram indicators: ``(len(texts), 384 + vocabulary)``."""
        return torch.cat([embed(texts), lexical_features(texts, self.vocabulary)], dim=1)


def lexical_features(texts: Sequence[str], vocabulary: Sequence[str]) -> torch.Tensor:
    """Binary n-gram indicators, scaled by :data:`LEXICAL_SCALE`."""
    index = {gram: i for i, gram in enumerate(vocabulary)}
    features = torch.zeros((len(texts), len(vocabulary)))
    for row, text in enumerate(texts):
        for gram in grams(text):
            if gram in index:
                features[row, index[gram]] = LEXICAL_SCALE
    return features


def build_vocabulary(texts: Sequence[str], min_count: int = MIN_GRAM_COUNT) -> tuple[str, ...]:
    """The n-grams that occur in at least ``min_count`` of ``texts``, sorted."""
    counts = Counter(gram for text in texts for gram in grams(text))
    return tuple(sorted(gram for gram, count in counts.items() if count >= min_count))


def load_weights(path: str | Path | None = None) -> ClassifierWeights:
    """Load classifier weights (default: the ones shipped with the package)."""
    from safetensors import safe_open

    source = (
        resources.as_file(DATA.joinpath(WEIGHTS_FILE)) if path is None else nullcontext(Path(path))
    )
    with source as file:
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return ClassifierWeights(
        dimensions=tuple(json.loads(metadata["dimensions"])),
        vocabulary=tuple(json.loads(metadata["vocabulary"])),
        weight=tensors["weight"],
        bias=tensors["bias"],
        feedback_weight=tensors["feedback_weight"],
        feedback_bias=tensors["feedback_bias"].reshape(()),
    )


def predict(
    weights: ClassifierWeights, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score embedded turns.

    Returns:
        Values ``(n, dimensions)`` in [−1, 1], feedback probabilities ``(n,)``, and the probabilities
        ``(n, dimensions)`` that each dimension was declared irrelevant.
    """
    logits = torch.einsum("nf,dcf->ndc", features, weights.weight) + weights.bias
    probs = logits.softmax(-1)
    values = probs[..., 2] - probs[..., 0]
    feedback = torch.sigmoid(features @ weights.feedback_weight + weights.feedback_bias)
    return values, feedback, probs[..., 3]


def read_utterances(path: str | Path | None = None) -> list[dict[str, Any]]:
    """The labelled training utterances (default: every ``utterances*.jsonl`` shipped with the package)."""
    if path is not None:
        sources: list[Any] = [Path(path)]
    else:
        sources = sorted(
            (
                f
                for f in DATA.iterdir()
                if f.name.startswith("utterances") and f.name.endswith(".jsonl")
            ),
            key=lambda f: f.name,
        )
    return [
        json.loads(line)
        for source in sources
        for line in source.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def train(
    utterances: Sequence[dict[str, Any]],
    *,
    dimensions: Sequence[str] = DIMENSIONS,
    l2: float = 1e-5,
    embeddings: torch.Tensor | None = None,
) -> ClassifierWeights:
    """Fit the per-dimension classifiers and the feedback head (deterministic: full-batch L-BFGS).

    Args:
        utterances: records ``{"text", "labels": {dimension: -1|0|1}, "cleared": [dimension, ...], "kind"}``.
        dimensions: the dimensions to learn, in output order.
        l2: weight decay, relative to the mean loss.
        embeddings: precomputed MiniLM embeddings of the texts (computed when omitted).
    """
    texts = [u["text"] for u in utterances]
    vocabulary = build_vocabulary(texts)
    if embeddings is None:
        embeddings = embed(texts)
    features = torch.cat([embeddings, lexical_features(texts, vocabulary)], dim=1)
    labels = torch.tensor(
        [
            [3 if d in u.get("cleared", ()) else u["labels"].get(d, 0) + 1 for d in dimensions]
            for u in utterances
        ]
    )
    is_feedback = torch.tensor([float(u.get("kind") == "feedback") for u in utterances])
    size = features.shape[1]
    weight = torch.zeros((len(dimensions), 4, size), requires_grad=True)
    bias = torch.zeros((len(dimensions), 4), requires_grad=True)
    fb_weight = torch.zeros(size, requires_grad=True)
    fb_bias = torch.zeros((), requires_grad=True)
    # Balance the classes per dimension: "nothing" is far more common than either pole.
    counts = torch.stack(
        [torch.bincount(labels[:, i], minlength=4) for i in range(len(dimensions))]
    ).float()
    class_weight = counts.sum(1, keepdim=True) / (4 * counts.clamp(min=1))
    optimiser = torch.optim.LBFGS(
        [weight, bias, fb_weight, fb_bias], lr=1, max_iter=500, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = torch.einsum("nf,dcf->ndc", features, weight) + bias
        loss = sum(
            torch.nn.functional.cross_entropy(logits[:, i], labels[:, i], weight=class_weight[i])
            for i in range(len(dimensions))
        )
        loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
            features @ fb_weight + fb_bias, is_feedback
        )
        loss = loss + l2 * (weight.pow(2).sum() + fb_weight.pow(2).sum())
        loss.backward()
        return loss

    optimiser.step(closure)
    return ClassifierWeights(
        dimensions=tuple(dimensions),
        vocabulary=vocabulary,
        weight=weight.detach(),
        bias=bias.detach(),
        feedback_weight=fb_weight.detach(),
        feedback_bias=fb_bias.detach(),
    )


def main() -> None:
    """Retrain on the shipped utterances and overwrite the shipped weights."""
    import argparse

    parser = argparse.ArgumentParser(description="Train the offline preference classifier.")
    parser.add_argument(
        "--utterances", help="labelled utterances (.jsonl); default: the shipped file"
    )
    parser.add_argument("--out", help="output file; default: the shipped weights file")
    args = parser.parse_args()
    weights = train(read_utterances(args.utterances))
    out = Path(args.out) if args.out else Path(str(DATA.joinpath(WEIGHTS_FILE)))
    weights.save(out)


if __name__ == "__main__":
    main()
