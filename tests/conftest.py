import sys
from pathlib import Path

# Shared test helpers (tiny_models, standard_flags) live beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
