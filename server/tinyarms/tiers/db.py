"""SQLite as tinyarms uses it: WAL and a busy timeout, so several servers (several editors)
can read and write the same small file at once.

Connections stay open per thread and process (opening one and checking the schema costs
more than the write itself); `synchronous=NORMAL` is WAL's documented safe setting: a
power cut may lose the last transactions, never corrupt the file.

Both stores are files a user (or a crash, a full disk, a sync tool) can break. `corrupt()`
tells a broken file from a busy one, `forget()` drops the open connection to it, and
`move_aside()` keeps the bad file for inspection next to where a new one starts.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_local = threading.local()
log = logging.getLogger(__name__)

# What makes a store unusable without being busy: a file that is not SQLite (or is damaged),
# a folder that cannot hold it (NotADirectoryError, PermissionError), a read-only file.
UNUSABLE = (sqlite3.DatabaseError, OSError)


BUSY_TIMEOUT_S = 10.0  # how long one statement waits for another process's write lock
LOCKED_GIVE_UP_S = 60.0  # how long a write keeps waiting (several busy timeouts) before it fails


def busy(exc: BaseException) -> bool:
    """Another process held the write lock past the busy timeout: the file is fine, just busy."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def corrupt(exc: BaseException) -> bool:
    """The file is damaged or not SQLite at all ("file is not a database", "malformed"), as
    opposed to busy, locked or unwritable (OperationalError)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def forget(path: Path) -> None:
    """Close this thread's connection to `path`, so the next `connect` opens the file anew."""
    conns: dict[tuple[int, Path], sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    conn = conns.pop((os.getpid(), path), None)
    if conn is not None:
        with suppress(sqlite3.Error):
            conn.close()


def move_aside(path: Path) -> Path:
    """Rename a broken store (and its -wal/-shm files) to `NAME.corrupt-STAMP`; returns the new path."""
    forget(path)
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        side = Path(f"{path}{suffix}")
        if side.exists():
            side.rename(f"{target}{suffix}")
    return target


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
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(schema)
        conns[key] = conn
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
