import pytest
from tiny_models import ARCHITECTURES, tiny_model, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def llama():
    return tiny_model("llama")


@pytest.fixture(params=sorted(ARCHITECTURES))
def arch_model(request):
    return request.param, tiny_model(request.param)
