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

__all__ = ["SqlitePersistence"]


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
