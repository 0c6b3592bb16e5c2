"""langchain-tests' standard suites for ``SteeredChatModel(engine="vllm")``, as for the HF engine.

The same flags and the same xfail as tests/integration_tests/test_standard_integration.py: the two engines
must look the same to a LangChain user.
"""

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from standard_flags import AgentLoopCapacity, SteeredChatModelFlags


class TestVLLMChatModelUnit(SteeredChatModelFlags, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "engine": "vllm", "steering": {"cost": 0.5}}


class TestVLLMChatModelIntegration(AgentLoopCapacity, SteeredChatModelFlags, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return {"model": "demo", "engine": "vllm", "dtype": "float32", "max_tokens": 160}
