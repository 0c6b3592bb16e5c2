"""The server's settings and request checks, without a model: keys, users and limits."""

import json

import pytest

from langchain_steer.server.protocol import ChatCompletionRequest, RequestError, check_request
from langchain_steer.server.settings import Limits, ServerSettings, check_user, read_api_keys


def test_a_public_address_needs_an_api_key():
    with pytest.raises(ValueError, match="needs an API key"):
        ServerSettings(host="0.0.0.0")
    ServerSettings(host="0.0.0.0", api_keys={"sk-0123456789abcdef": frozenset({"*"})})
    ServerSettings(host="127.0.0.1")
    ServerSettings(host="::1")
    with pytest.raises(ValueError, match="16 characters"):
        ServerSettings(api_keys={"short": frozenset({"*"})})


@pytest.mark.parametrize("name", ["ana", "a.b_c-d@e", "A" * 64, "7"])
def test_valid_user_names(name):
    assert check_user(name) == name


@pytest.mark.parametrize("name", ["", "../etc", "a b", "A" * 65, "-ana", "ana/bob", "ä"])
def test_invalid_user_names(name):
    with pytest.raises(ValueError, match="user name"):
        check_user(name)


def test_key_files_map_keys_to_users(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"sk-ana-0123456789abcdef": ["ana"], "sk-app-0123456789abcdef": "*"}))
    keys = read_api_keys(path)
    assert keys == {
        "sk-ana-0123456789abcdef": frozenset({"ana"}),
        "sk-app-0123456789abcdef": frozenset({"*"}),
    }
    path.write_text(json.dumps({"sk-ana-0123456789abcdef": []}))
    with pytest.raises(ValueError, match="non-empty list"):
        read_api_keys(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_api_keys(path)


def _request(**fields):
    return ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], **fields)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": 3.0}, "temperature"),
        ({"tools": [{"type": "function", "function": {"name": f"t{i}"}} for i in range(65)]}, "tools"),
    ],
)
def test_limits_name_the_field(fields, param):
    with pytest.raises(RequestError) as raised:
        check_request(_request(**fields), Limits())
    assert raised.value.param == param and raised.value.status == 400


def test_too_many_or_too_long_messages():
    many = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}] * 257)
    with pytest.raises(RequestError, match="messages"):
        check_request(many, Limits())
    long = ChatCompletionRequest(messages=[{"role": "user", "content": "x" * 32_001}])
    with pytest.raises(RequestError, match="characters"):
        check_request(long, Limits())
    check_request(_request(max_tokens=2048, n=1), Limits())
