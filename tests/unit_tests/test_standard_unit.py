"""langchain-tests' standard unit suite for SteeredChatModel (no weights are loaded)."""

from langchain_tests.unit_tests import ChatModelUnitTests
from standard_flags import SteeredChatModelFlags


class TestSteeredChatModelUnit(SteeredChatModelFlags, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "steering": {"cost": 0.5}}
