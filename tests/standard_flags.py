"""Feature flags shared by the unit and integration standard suites, and their one expected failure."""

import pytest

from langchain_steer import SteeredChatModel


class SteeredChatModelFlags:
    @property
    def chat_model_class(self) -> type[SteeredChatModel]:
        return SteeredChatModel

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True


class AgentLoopCapacity:
    """The one expected failure of the integration suite, on either engine (docs/standard_tests.md)."""

    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    @pytest.mark.xfail(
        reason="Model capacity: under tool_choice='auto' the model is asked for <tool_call>{...}</tool_call> "
        "and a call it starts is grammar-constrained, but SmolLM2-135M answers the weather question in prose "
        "and never starts one (replies in docs/standard_tests.md). Forced calls pass in test_tool_calling.",
        strict=False,
    )
    def test_agent_loop(self, model):
        super().test_agent_loop(model)  # type: ignore[misc]
