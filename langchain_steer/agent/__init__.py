"""The LangGraph preference agent: infer what a user prefers and steer every reply by it.

Three ways to set the strengths, as in the paper: LEARN (inferred from the conversation, the default),
SELECT (given explicitly) and CALIBRATE (A/B questions: the elicitation in ``agent.elicitation``). See
``docs/agent.md``.
"""

from langchain_steer.agent.graph import build_preference_agent
from langchain_steer.agent.inference import (
    EmbeddingInferencer,
    Inferencer,
    LLMInferencer,
    Reading,
    default_inferencer,
    infer_preferences,
    update_preferences,
)
from langchain_steer.agent.remote import RemoteSteering
from langchain_steer.agent.state import AgentContext, PreferenceState, preference_namespace

__all__ = [
    "AgentContext",
    "EmbeddingInferencer",
    "Inferencer",
    "LLMInferencer",
    "PreferenceState",
    "Reading",
    "RemoteSteering",
    "build_preference_agent",
    "default_inferencer",
    "infer_preferences",
    "preference_namespace",
    "update_preferences",
]
