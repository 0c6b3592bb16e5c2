"""langchain-tests' standard suites for ``SteeredChatModel(engine="vllm")``, as for the HF engine.

The same flags and the same xfail as tests/integration_tests/test_standard_integration.py: the two engines
must look the same to a LangChain user.
"""

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from standard_flags import SteeredChatModelFlags


class TestVLLMChatModelUnit(SteeredChatModelFlags, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "engine": "vllm", "steering": {"cost": 0.5}}


class TestVLLMChatModelIntegration(SteeredChatModelFlags, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "engine": "vllm", "dtype": "float32", "max_tokens": 160}

    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    @pytest.mark.xfail(
        reason="Model capacity: under tool_choice='auto' the model is asked for <tool_call>{...}</tool_call> "
        "and a call it starts is grammar-constrained, but SmolLM2-135M answers the weather question in prose "
        "and never starts one (replies in docs/standard_tests.md). Forced calls pass in test_tool_calling.",
        strict=False,
    )
    def test_agent_loop(self, model):
        super().test_agent_loop(model)
