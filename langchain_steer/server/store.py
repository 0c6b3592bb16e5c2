"""Per-user preferences on disk: LangGraph's SQLite store by default, its PostgreSQL store for a URL.

The namespace and key are the preference agent's (``("users", user, "preferences")``, ``"current"``), so
the server, ``langchain-steer agent`` and a user's own LangGraph graph read and write one truth. Writes are
committed before the call returns: SQLite's store runs in autocommit mode, PostgreSQL's commits each
``put``. The methods block; the server calls them off the event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_steer.agent.nodes import STORE_KEY
from langchain_steer.agent.persistence import SqlitePersistence
from langchain_steer.agent.state import preference_namespace

__all__ = ["PreferenceStore"]


class PreferenceStore:
    """Opens the preference store named by ``db`` and reads and writes one user's preferences.

    ``store`` is the LangGraph store and ``checkpointer`` the LangGraph checkpointer on the same database
    (the CALIBRATE sessions' threads live there).

    Args:
        db: a SQLite file path, or a ``postgresql://`` URL (needs ``langchain-steer[server]``, which
            installs ``langgraph-checkpoint-postgres`` and ``psycopg``).

    Raises:
        ImportError: a PostgreSQL URL without the PostgreSQL packages (the message says what to install).
    """

    def __init__(self, db: str | Path) -> None:
        self.url = str(db)
        self._closers: list[Any] = []
        if self.url.startswith(("postgresql://", "postgres://")):
            try:
                from langgraph.checkpoint.postgres import PostgresSaver
                from langgraph.store.postgres import PostgresStore
            except ImportError as error:
                raise ImportError(
                    'PostgreSQL needs `pip install "langchain-steer[server]"` '
                    "(langgraph-checkpoint-postgres and psycopg)."
                ) from error
            manager = PostgresStore.from_conn_string(self.url)
            self.store: Any = manager.__enter__()
            self._closers.append(lambda: manager.__exit__(None, None, None))
            self.store.setup()
            saver_manager = PostgresSaver.from_conn_string(self.url)
            self.checkpointer: Any = saver_manager.__enter__()
            self._closers.append(lambda: saver_manager.__exit__(None, None, None))
            self.checkpointer.setup()
        else:
            persistence = SqlitePersistence(self.url)
            self.store = persistence.store
            self.checkpointer = persistence.checkpointer
            self._closers.append(persistence.close)

    def get(self, user: str) -> dict[str, float]:
        """The user's stored preferences (empty when none were stored)."""
        item = self.store.get(preference_namespace(user), STORE_KEY)
        return dict(item.value.get("preferences", {})) if item is not None else {}

    def put(self, user: str, preferences: dict[str, float]) -> None:
        """Replace the user's preferences; durable when this returns."""
        self.store.put(preference_namespace(user), STORE_KEY, {"preferences": dict(preferences)})

    def delete(self, user: str) -> None:
        """Forget the user's preferences."""
        self.store.delete(preference_namespace(user), STORE_KEY)

    def ping(self) -> None:
        """Raise if the database cannot be read (for ``/ready``)."""
        self.store.get(("health",), "ping")

    def close(self) -> None:
        """Close the connections; safe to call twice."""
        closers, self._closers = self._closers, []
        for close in closers:
            close()
