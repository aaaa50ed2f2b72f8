"""SQLite as tinyarms uses it: WAL and a busy timeout, so several servers (several editors)
can read and write the same small file at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """Autocommit mode: callers open explicit transactions (BEGIN IMMEDIATE) where they need them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(schema)
        yield conn
    finally:
        conn.close()
