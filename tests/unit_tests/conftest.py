import pytest
from tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer

from langchain_steer.models import clear_model_cache


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def llama():
    return tiny_model("llama")


@pytest.fixture(params=sorted(ARCHITECTURES))
def arch_model(request):
    return request.param, tiny_model(request.param)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    """A tiny random Llama saved as a model folder, loaded by path like a real checkpoint.

    One folder per test module; the process-level model cache is cleared after the module.
    """
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_model("llama", seed=3).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    yield str(folder)
    clear_model_cache()
