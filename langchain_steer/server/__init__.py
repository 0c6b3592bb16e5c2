"""An OpenAI-compatible server with per-user steering and stored preferences.

``create_app(ServerSettings(...))`` builds the FastAPI app; ``langchain-steer serve`` runs it under uvicorn.
See ``docs/server.md``. The server needs ``pip install "langchain-steer[server]"``.
"""

from langchain_steer.server.app import ServerState, create_app
from langchain_steer.server.settings import Limits, ServerSettings, read_api_keys

__all__ = ["Limits", "ServerSettings", "ServerState", "create_app", "read_api_keys"]
