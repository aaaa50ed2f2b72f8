"""The user's route corrections ("this was a fix"): the one place tinyarms keeps request text.

The decision trace never holds request text, but a correction is only useful with it: `tinyarms
router fit --from-log` adds the corrected requests to the routes' examples. So a correction is
written here, in the user's state dir beside the trace (mode 0600, one JSON line each:
`{ts, trace_id, route, text}`), and only when the user corrects a route. Delete the file to
forget them; `tinyarms router fit --from-log` reads them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger(__name__)
MAX_TEXT = 2000  # the router reads no further (router.MAX_CHARS)


def corrections_path() -> Path:
    return platformdirs.user_state_path("tinyarms") / "corrections.jsonl"


def append(route: str | None, text: str, trace_id: str | None = None, *, path: Path | None = None) -> None:
    """One line, one write on an O_APPEND file; a full disk loses the correction, not the request."""
    path = path or corrections_path()
    record: dict[str, Any] = {"ts": round(time.time(), 3), "trace_id": trace_id, "route": route}
    record["text"] = text[:MAX_TEXT]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("could not write the route correction to %s: %s", path, exc)


def read(*, since_s: float | None = None, path: Path | None = None) -> Iterator[tuple[str | None, str]]:
    """(route, text) of each correction since `since_s` seconds ago; a later one for the same text wins."""
    path = path or corrections_path()
    if not path.is_file():
        return
    cutoff = time.time() - since_s if since_s else 0.0
    latest: dict[str, str | None] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line after a crash
            if not isinstance(record, dict) or float(record.get("ts", 0)) < cutoff:
                continue
            text, route = record.get("text"), record.get("route")
            if isinstance(text, str) and text.strip() and (route is None or isinstance(route, str)):
                latest.pop(text.strip(), None)
                latest[text.strip()] = route
    yield from ((route, text) for text, route in latest.items())
