"""A `create_agent` agent whose middleware sets the steering of every model call from the user's profile.

Needs the `langchain` package: pip install "langchain>=1,<2". Run: python examples/agent_middleware.py
"""

from dataclasses import dataclass

from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, wrap_model_call

from langchain_steer import SteeredChatModel

PROFILES = {"alice": {"cost": 1.0}, "bob": {"cost": -1.0, "age": -1.0}}


@dataclass
class UserContext:
    user_id: str


@wrap_model_call
def steer_for_user(request: ModelRequest, handler):
    """Look up the caller's preferences and pass them to the model as per-call steering."""
    steering = PROFILES.get(request.runtime.context.user_id, {})
    return handler(
        request.override(model_settings={**request.model_settings, "steering": steering})
    )


def get_city_guide(city: str) -> str:
    """Return a short guide to a city."""
    return f"{city}: great food, museums and parks."


agent = create_agent(
    SteeredChatModel(model="demo", max_tokens=60),
    tools=[get_city_guide],
    middleware=[steer_for_user],
    context_schema=UserContext,
)

for user in PROFILES:
    result = agent.invoke(
        {
            "messages": [
                {"role": "user", "content": "Can you recommend a place to eat in Chicago tonight?"}
            ]
        },
        context=UserContext(user_id=user),
    )
    reply = result["messages"][-1]
    print(
        f"{user}: {reply.content}\n  steering applied: {reply.response_metadata.get('steering')}\n"
    )
