"""langchain-steer: per-user activation steering for local HuggingFace chat models.

Public API::

    from langchain_steer import load_model, builtin_vectors, steer, SteeringVector
"""

from importlib.metadata import PackageNotFoundError, version

from langchain_steer.chat_model import SteeredChatModel
from langchain_steer.dimensions import DIMENSIONS, Example, builtin_vectors, load_dimension
from langchain_steer.eval.range_calibration import calibrate_range
from langchain_steer.extract import extract_vector
from langchain_steer.hooks import MAX_STRENGTH, SteeringHandle, apply_steering, steer
from langchain_steer.layers import find_layers
from langchain_steer.models import load_model
from langchain_steer.vectors import SteeringVector

try:
    __version__ = version("langchain-steer")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "DIMENSIONS",
    "MAX_STRENGTH",
    "Example",
    "SteeredChatModel",
    "SteeringHandle",
    "SteeringVector",
    "__version__",
    "apply_steering",
    "builtin_vectors",
    "calibrate_range",
    "extract_vector",
    "find_layers",
    "load_dimension",
    "load_model",
    "steer",
]
