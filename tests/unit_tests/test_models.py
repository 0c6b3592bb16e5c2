import pytest
import torch
from tiny_models import tiny_model, tiny_tokenizer

from langchain_steer.models import cache_dir, clear_model_cache, load_model, resolve_dtype


@pytest.fixture
def tiny_dir(tmp_path):
    folder = tmp_path / "tiny-llama"
    tiny_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    yield folder
    clear_model_cache()


def test_local_folder_is_loaded_once_per_process(tiny_dir):
    model, tokenizer = load_model(str(tiny_dir), device="cpu")
    again = load_model(str(tiny_dir), device="cpu")
    assert again[0] is model and again[1] is tokenizer
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert tokenizer.pad_token is not None
    half = load_model(str(tiny_dir), device="cpu", dtype="bfloat16")
    assert half[0] is not model and next(half[0].parameters()).dtype == torch.bfloat16


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LANGCHAIN_STEER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LANGCHAIN_STEER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "langchain-steer"


def test_bad_arguments_are_clear(tmp_path):
    with pytest.raises(ValueError, match="Unknown dtype"):
        resolve_dtype("float33", "cpu")
    assert resolve_dtype(None, "cpu") == torch.float32
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        load_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(ValueError, match="needs a model name"):
        load_model("")


def test_clearing_the_cache_during_a_load_does_not_load_twice(tiny_dir, monkeypatch):
    import threading
    import time

    import transformers

    clear_model_cache()
    real = transformers.AutoModelForCausalLM.from_pretrained
    loads = []

    def slow(*args, **kwargs):
        loads.append(1)
        time.sleep(1.0)  # a load long enough for another thread to clear the cache meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", slow)
    results = []
    first = threading.Thread(target=lambda: results.append(load_model(str(tiny_dir))))
    first.start()
    time.sleep(0.3)
    clear_model_cache()
    second = threading.Thread(target=lambda: results.append(load_model(str(tiny_dir))))
    second.start()
    first.join(30)
    second.join(30)
    assert len(loads) == 1, "two threads loaded the same model"
    assert results[0][0] is results[1][0]
    clear_model_cache()
