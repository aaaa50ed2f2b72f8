"""Append-only JSON-lines logs in the state dir (the decision trace, autocomplete feedback).

One record is one write(2) on an O_APPEND file, so concurrent servers never interleave
lines; a torn line (a crash mid-write) is skipped on reading, never an error. A full or
read-only disk is a warning: a log must never fail the answer or the keystroke.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def append(path: Path, record: dict[str, Any], *, rotate_bytes: int | None = None) -> bool:
    """Write `record` as one line; with `rotate_bytes`, a larger file is moved to `NAME.1` first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if rotate_bytes is not None and path.is_file() and path.stat().st_size > rotate_bytes:
            os.replace(path, path.with_suffix(path.suffix + ".1"))
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return True
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)
        return False


def read(path: Path, *, since_s: float | None = None) -> Iterator[dict[str, Any]]:
    """The records (objects) of the last `since_s` seconds, oldest first."""
    if not path.is_file():
        return
    cutoff = time.time() - since_s if since_s else 0.0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line after a crash: skip it, keep the rest
            if isinstance(record, dict) and float(record.get("ts", 0)) >= cutoff:
                yield record
