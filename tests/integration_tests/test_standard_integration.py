"""langchain-tests' standard integration suite, run against the embedded SmolLM2-135M-Instruct.

Every xfail below is a limit of the 135M model's capacity, not of our code; docs/standard_tests.md lists each.
"""

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from standard_flags import SteeredChatModelFlags


class TestSteeredChatModelIntegration(SteeredChatModelFlags, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "max_tokens": 160}

    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    @pytest.mark.xfail(
        reason="Model capacity: under tool_choice='auto' the model is asked for <tool_call>{...}</tool_call> "
        "and a call it starts is grammar-constrained, but SmolLM2-135M answers the weather question in prose "
        "and never starts one (replies in docs/standard_tests.md). Forced calls pass in test_tool_calling.",
        strict=False,
    )
    def test_agent_loop(self, model):
        super().test_agent_loop(model)
