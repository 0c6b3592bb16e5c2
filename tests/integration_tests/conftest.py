import pytest

from langchain_steer import builtin_vectors, load_model


@pytest.fixture(scope="session")
def demo():
    """The embedded SmolLM2-135M-Instruct and its tokenizer (installed by `make test`)."""
    return load_model("demo")


@pytest.fixture(scope="session")
def demo_vectors():
    return builtin_vectors("demo")
