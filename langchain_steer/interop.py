"""llama.cpp control vectors: write and read the GGUF files that ``llama-cli --control-vector`` loads.

The format, as llama.cpp reads it (``llama_control_vector_load``):

* the GGUF key ``general.architecture`` is ``"controlvector"``; ``controlvector.model_hint`` names the model
  family and ``controlvector.layer_count`` the number of layers the file covers;
* one float32 1-D tensor ``direction.{k}`` per steered layer. llama.cpp adds ``direction.k`` (times the
  scale given on its command line) to the output of decoder block ``k``, counting blocks from 0, which is
  exactly our hook point and layer numbering
  (:data:`~langchain_steer.passport.HOOK_POINT`, :data:`~langchain_steer.passport.LAYER_NUMBERING`). It
  never reads ``direction.0``, so a vector that steers block 0 cannot travel: exporting one raises.

The file holds offsets, not unit directions with a range: :func:`export_gguf` folds the strength (and the
vector's range on that side) into the numbers, and :func:`import_gguf` reads them back as a symmetric
vector whose strength +1 adds the file's offsets (``-1`` subtracts them), which is what llama.cpp's
``--control-vector-scaled FILE 1.0`` does. Files written by repeng (``ControlVector.export_gguf``) read the
same way. Both use the ``gguf`` package, not hand-written binary code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from langchain_steer.vectors import SteeringVector

__all__ = ["export_gguf", "import_gguf"]

ARCHITECTURE = "controlvector"


def export_gguf(vector: SteeringVector, path: str | Path, strength: float = 1.0) -> Path:
    """Write ``vector`` at ``strength`` as a llama.cpp control vector; returns the path.

    Raises:
        ValueError: the vector steers block 0 (llama.cpp has no tensor for it), or ``strength`` is 0 or
            not finite.
    """
    import gguf

    if not np.isfinite(strength) or strength == 0:
        raise ValueError(f"strength must be a finite, non-zero number, not {strength!r}.")
    offsets = vector.offsets(float(strength))
    if 0 in offsets:
        raise ValueError(
            f"Vector {vector.name or '<unnamed>'!r} steers layer 0, which llama.cpp's control vectors cannot "
            "express (it reads direction.1 onward): extract it without layer 0 to export it."
        )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    architecture = (vector.passport.architecture if vector.passport else "") or "llama"
    layers = vector.passport.layer_count if vector.passport else max(offsets) + 1
    writer = gguf.GGUFWriter(str(target), ARCHITECTURE)
    try:
        writer.add_string(f"{ARCHITECTURE}.model_hint", architecture)
        writer.add_uint32(f"{ARCHITECTURE}.layer_count", int(layers))
        for layer in sorted(offsets):
            data = offsets[layer].detach().to("cpu", torch.float32).numpy()
            writer.add_tensor(f"direction.{layer}", np.ascontiguousarray(data, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return target


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.parts[field.data[0]]
    if field.types and field.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value.tolist()[0] if hasattr(value, "tolist") else value


def import_gguf(
    path: str | Path, model: Any = None, *, name: str | None = None, poles: tuple[str, str] = ("-", "+")
) -> SteeringVector:
    """Read a llama.cpp control vector (ours, repeng's, or llama.cpp's own ``cvector-generator``).

    Args:
        path: the ``.gguf`` file.
        model: optional: a loaded model, whose hidden size and layer count the file must fit. Without it
            only the file's own consistency is checked.
        name: the dimension name (default: the file name without its suffix).
        poles: the names of the negative and positive poles.

    Returns:
        A symmetric :class:`~langchain_steer.vectors.SteeringVector` with ``functional_range=1``: strength
        +1 adds exactly the file's offsets. It has no passport (the file does not say which tokenizer or
        chat template it was made with).

    Raises:
        ValueError: the file is not a control vector (the message names it and says what is wrong), or it
            does not fit ``model``.
    """
    import gguf

    source = Path(path)
    try:
        reader = gguf.GGUFReader(str(source))
    except Exception as error:  # gguf raises ValueError, struct.error, OSError... on a bad file
        raise ValueError(f"{source}: not a readable GGUF file ({error}).") from error
    architecture = _field(reader, "general.architecture")
    if architecture != ARCHITECTURE:
        raise ValueError(
            f"{source}: general.architecture is {architecture!r}, not {ARCHITECTURE!r}: not a control vector."
        )
    directions: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        prefix, _, index = tensor.name.partition(".")
        if prefix != "direction" or not index.isdigit():
            raise ValueError(f"{source}: unexpected tensor {tensor.name!r} (expected direction.<layer>).")
        data = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
        directions[int(index)] = torch.from_numpy(data.copy())
    if not directions:
        raise ValueError(f"{source}: the file holds no direction tensors.")
    sizes = {d.shape[0] for d in directions.values()}
    if len(sizes) != 1:
        raise ValueError(f"{source}: direction tensors of different sizes {sorted(sizes)}.")
    directions.pop(0, None)  # llama.cpp never applies it; a file may still carry one
    vector = SteeringVector(
        directions=directions,
        name=name or source.stem,
        poles=poles,
        functional_range=1.0,
        extra={"source": "gguf", "model_hint": _field(reader, f"{ARCHITECTURE}.model_hint")},
    )
    if model is not None:
        vector.validate_for(model)
    return vector
