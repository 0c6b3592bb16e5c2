"""Vectors on disk: single files, folders of them, and vector packs (one model's dimensions in one folder).

A **vector pack** is a folder holding every dimension made for one model::

    my-llama-vectors/
        vectors.safetensors     # every tensor: "<dimension>/layer.<n>" and "<dimension>/negative.<n>"
        steering_config.json    # the format version, and per dimension its metadata and passport
        README.md               # optional: a model card, as the Hub shows it

It is a valid Hugging Face Hub repository layout: ``huggingface_hub.upload_folder(folder_path=...,
repo_id=...)`` publishes it, and ``snapshot_download`` brings it back, with no code of ours. Write one with
:func:`save_pretrained`, read it with :func:`from_pretrained`; :func:`load_vectors`,
``SteeredChatModel(vectors=...)`` and ``langchain-steer serve --vectors`` take a pack folder as well as a
folder of single ``.safetensors`` files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_steer.vectors import SteeringVector

__all__ = ["CONFIG", "PACK_FORMAT_VERSION", "TENSORS", "from_pretrained", "load_vectors", "save_pretrained"]

CONFIG = "steering_config.json"
TENSORS = "vectors.safetensors"
PACK_FORMAT_VERSION = 1


def save_pretrained(vectors: Mapping[str, SteeringVector], folder: str | Path) -> Path:
    """Write ``vectors`` (name → vector) as a vector pack in ``folder``; returns the folder.

    The files are written beside their destination and renamed into place, so a crash never leaves a
    half-written pack.

    Raises:
        ValueError: no vectors, a name with ``/`` in it, or vectors made for different models (their
            passports differ: a pack is one model's).
    """
    from safetensors.torch import save_file

    if not vectors:
        raise ValueError("A vector pack needs at least one vector.")
    passports = [v.passport for v in vectors.values() if v.passport is not None]
    for other in passports[1:]:
        if differ := "; ".join(passports[0].mismatches(other)):
            raise ValueError(f"A vector pack holds one model's vectors, but these differ: {differ}.")
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    dimensions: dict[str, Any] = {}
    for name, vector in sorted(vectors.items()):
        if "/" in name or not name:
            raise ValueError(f"Dimension names in a pack may not be empty or contain '/': {name!r}.")
        for key, tensor in vector.tensors().items():
            tensors[f"{name}/{key}"] = tensor
        dimensions[name] = {**vector.metadata(), "name": name}
    config = {"format_version": PACK_FORMAT_VERSION, "library": "langchain-steer", "dimensions": dimensions}
    for file, write in (
        (TENSORS, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"})),
        (CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2), "utf-8")),
    ):
        tmp = target / f".{file}.tmp"
        write(tmp)
        tmp.replace(target / file)
    return target


def from_pretrained(folder: str | Path) -> dict[str, SteeringVector]:
    """Read a vector pack written by :func:`save_pretrained` (a local folder, e.g. ``snapshot_download``'s).

    Raises:
        FileNotFoundError: the folder lacks ``steering_config.json`` or ``vectors.safetensors``.
        ValueError: an unknown pack format version, or files that do not match each other (the message
            names the folder and the dimension).
    """
    from safetensors import safe_open

    source = Path(folder)
    for file in (CONFIG, TENSORS):
        if not (source / file).is_file():
            raise FileNotFoundError(f"{source} is not a vector pack: it has no {file}.")
    try:
        config = json.loads((source / CONFIG).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{source / CONFIG}: not readable JSON ({error}).") from error
    version = config.get("format_version")
    if version != PACK_FORMAT_VERSION:
        raise ValueError(
            f"{source}: vector pack format version {version!r}; this langchain-steer reads version "
            f"{PACK_FORMAT_VERSION}. Upgrade langchain-steer to read it."
        )
    try:
        with safe_open(str(source / TENSORS), framework="pt", device="cpu") as handle:
            stored = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{source / TENSORS}: not a readable safetensors file ({error}).") from error
    dimensions = config.get("dimensions") or {}
    owners = {key.split("/", 1)[0] for key in stored}
    orphans = sorted(owners - set(dimensions))
    if orphans:
        raise ValueError(f"{source}: tensors for {orphans} have no entry in {CONFIG}.")
    vectors = {}
    for name, meta in dimensions.items():
        prefix = f"{name}/"
        parts = {key[len(prefix) :]: t for key, t in stored.items() if key.startswith(prefix)}
        vectors[name] = SteeringVector.from_parts(meta, parts, f"{source} ({name})")
    return vectors


def load_vectors(path: str | Path) -> dict[str, SteeringVector]:
    """Load one ``.safetensors`` vector file, every one in a folder, or a vector pack, keyed by name.

    A vector saved without a name is keyed by its file name (without the suffix).

    Raises:
        FileNotFoundError: the path does not exist, or the folder holds no ``.safetensors`` file.
        ValueError: a file is not a langchain-steer vector, or two files hold the same dimension.
    """
    source = Path(path)
    if (source / CONFIG).is_file():
        return from_pretrained(source)
    files = sorted(source.glob("*.safetensors")) if source.is_dir() else [source]
    if not files:
        raise FileNotFoundError(f"No .safetensors vectors in {source}")
    vectors: dict[str, SteeringVector] = {}
    origin: dict[str, Path] = {}
    for file in files:
        vector = SteeringVector.load(file)
        name = vector.name or file.stem
        if name in vectors:
            # Keeping either one silently would steer with a vector the user did not pick.
            raise ValueError(
                f"{origin[name]} and {file} both hold the dimension {name!r}; keep one of them."
            )
        vectors[name], origin[name] = vector, file
    return vectors
