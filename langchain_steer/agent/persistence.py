"""SQLite persistence for the agent: a checkpointer for threads and a store for per-user preferences.

Both live in one database file, on two connections: LangGraph's ``SqliteStore`` manages its own
transactions (autocommit connection), while ``SqliteSaver`` relies on the driver's. Sharing one connection
between them fails with "cannot start a transaction within a transaction".

Example::

    with SqlitePersistence("agent.db") as db:
        agent = build_preference_agent(checkpointer=db.checkpointer, store=db.store)
        agent.invoke(...)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["SqlitePersistence", "default_database"]


def default_database() -> Path:
    """The SQLite file that ``langchain-steer agent`` and ``langchain-steer serve`` share by default.

    ``$LANGCHAIN_STEER_DB`` wins; otherwise ``preferences.db`` in the user's data folder
    (``$XDG_DATA_HOME/langchain-steer``, or ``~/.local/share/langchain-steer``), so that the agent and the
    server read and write the same preferences.
    """
    import os

    if os.environ.get("LANGCHAIN_STEER_DB"):
        return Path(os.environ["LANGCHAIN_STEER_DB"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "langchain-steer" / "preferences.db"


class SqlitePersistence:
    """Opens (and creates) a SQLite file with a LangGraph checkpointer and store on it.

    Args:
        path: the database file; its folder is created if needed. ``":memory:"`` is not supported (the two
            connections would see two different databases).

    Attributes:
        checkpointer: a ``SqliteSaver`` (threads, interrupts).
        store: a ``SqliteStore`` (per-user preferences, namespace ``("users", user_id, "preferences")``).
    """

    def __init__(self, path: str | Path) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.store.sqlite import SqliteStore

        if str(path) == ":memory:":
            raise ValueError(
                "SqlitePersistence needs a file path; use InMemorySaver/InMemoryStore in memory."
            )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._saver_connection = sqlite3.connect(self.path, check_same_thread=False)
        self._store_connection = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None
        )
        try:
            # WAL lets one connection read while the other writes.
            self._store_connection.execute("PRAGMA journal_mode=WAL")
            self.checkpointer: Any = SqliteSaver(self._saver_connection)
            self.checkpointer.setup()
            self.store: Any = SqliteStore(self._store_connection)
            self.store.setup()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close both connections; safe to call twice."""
        for connection in (self._saver_connection, self._store_connection):
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> SqlitePersistence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
