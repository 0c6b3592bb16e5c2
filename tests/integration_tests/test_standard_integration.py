"""langchain-tests' standard integration suite, run against the embedded SmolLM2-135M-Instruct.

Its one xfail (``AgentLoopCapacity``, tests/standard_flags.py) is a limit of the 135M model's capacity, not
of our code; docs/standard_tests.md shows the replies.
"""

from langchain_tests.integration_tests import ChatModelIntegrationTests
from standard_flags import AgentLoopCapacity, SteeredChatModelFlags


class TestSteeredChatModelIntegration(AgentLoopCapacity, SteeredChatModelFlags, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "max_tokens": 160}
