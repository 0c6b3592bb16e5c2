"""Feature flags shared by the unit and integration standard suites."""

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
