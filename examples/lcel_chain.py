"""An LCEL chain (prompt | model | parser) whose model is steered per call.

Run: python examples/lcel_chain.py
"""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField

from langchain_steer import SteeredChatModel

prompt = ChatPromptTemplate.from_messages(
    [("user", "Can you recommend {thing} in {city}? Answer in two sentences.")]
)
llm = SteeredChatModel(model="demo", max_tokens=60)

# 1. Bind a steering setting into the chain.
budget_chain = prompt | llm.bind(steering={"cost": -1.0}) | StrOutputParser()
print("budget: ", budget_chain.invoke({"thing": "a place to eat", "city": "Chicago"}), "\n")

# 2. Or make steering configurable, and choose it per invocation (e.g. per user).
configurable = llm.configurable_fields(
    steering=ConfigurableField(id="steering", name="Steering", description="dimension -> strength")
)
chain = prompt | configurable | StrOutputParser()
for user, steering in {"alice": {"cost": 1.0}, "bob": {"cost": -1.0, "age": -1.0}}.items():
    reply = chain.invoke(
        {"thing": "a place to eat", "city": "Chicago"},
        config={"configurable": {"steering": steering}},
    )
    print(f"{user} {steering}: {reply}\n")
