"""langchain-tests' standard unit suite for SteeredChatModel (no weights are loaded)."""

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_steer import SteeredChatModel


class TestSteeredChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[SteeredChatModel]:
        return SteeredChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "steering": {"cost": 0.5}}

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
