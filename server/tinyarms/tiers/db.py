"""SQLite as tinyarms uses it: WAL and a busy timeout, so several servers (several editors)
can read and write the same small file at once.

Connections stay open per thread and process (opening one and checking the schema costs
more than the write itself); `synchronous=NORMAL` is WAL's documented safe setting: a
power cut may lose the last transactions, never corrupt the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_local = threading.local()


@contextmanager
def connect(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """Autocommit mode: callers open explicit transactions (BEGIN IMMEDIATE) where they need them."""
    conns: dict[tuple[int, Path], sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    key = (os.getpid(), path)
    conn = conns.get(key)
    if conn is None or not path.exists():  # deleted underneath us (tests, `cache clear` elsewhere): reopen
        if conn is not None:
            conn.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(schema)
        conns[key] = conn
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
