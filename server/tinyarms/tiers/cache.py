"""Layer 0: a response cache in front of every routed call (autocomplete has its own).

The exact key is role + tier + the normalised request + a hash of the context. The
optional semantic layer reuses an answer whose request embeds within a high cosine
threshold of the new one, under the same role, tier and context. Stored in the
platformdirs cache dir: keys and vectors are hashes and numbers; answers are the only text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import time
from array import array
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import platformdirs
from attrs import define

from tinyarms.tiers import db

log = logging.getLogger(__name__)

Embed = Callable[[str], Sequence[float]]


def cache_path() -> Path:
    return platformdirs.user_cache_path("tinyarms") / "responses.sqlite"


def _normalise(text: str) -> str:
    return " ".join(text.split())


def request_text(messages: list[dict[str, str]]) -> str:
    """What the user asked: the non-system messages, normalised (for embeddings)."""
    return _normalise("\n".join(m.get("content", "") for m in messages if m.get("role") != "system"))


def scope(role: str, tier: str, model: str, settings: dict[str, Any], context: str) -> str:
    """Everything but the request that must match for an answer to be reused."""
    context_hash = hashlib.sha256(context.encode()).hexdigest()
    blob = json.dumps([role, tier, model, settings, context_hash], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def exact_key(scope_key: str, messages: list[dict[str, str]]) -> str:
    normal = [[m.get("role", ""), _normalise(m.get("content", ""))] for m in messages]
    return hashlib.sha256(json.dumps([scope_key, normal]).encode()).hexdigest()


@define
class Hit:
    text: str
    tier: str
    model: str
    kind: str  # "hit" (exact) or "semantic-hit"
    similarity: float | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, scope TEXT NOT NULL, created REAL NOT NULL,
    tier TEXT NOT NULL, model TEXT NOT NULL, answer TEXT NOT NULL, embedding BLOB
);
CREATE INDEX IF NOT EXISTS responses_scope ON responses (scope, created);
"""


_WARNED: set[Path] = set()  # caches already reported unusable (once per file and process)


class ResponseCache:
    def __init__(self, path: Path | None = None, *, ttl_s: float = 86400.0) -> None:
        self.path = path or cache_path()
        self.ttl_s = ttl_s

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return db.connect(self.path, _SCHEMA)

    def _unusable(self, exc: BaseException) -> None:
        """The cache is an optimisation: a broken file or folder costs it, never the answer."""
        if self.path not in _WARNED:
            _WARNED.add(self.path)
            log.warning("the response cache %s cannot be used (%s); answering without it", self.path, exc)

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """The rows of a query; none when the store is unusable."""
        try:
            with self._db() as conn:
                return conn.execute(sql, args).fetchall()
        except db.UNUSABLE as exc:
            self._unusable(exc)
            return []

    def get(self, key: str) -> Hit | None:
        rows = self._rows(
            "SELECT answer, tier, model FROM responses WHERE key = ? AND created >= ?", (key, time.time() - self.ttl_s)
        )
        return Hit(rows[0][0], rows[0][1], rows[0][2], "hit") if rows else None

    def nearest(self, scope_key: str, vector: Sequence[float], threshold: float) -> Hit | None:
        query = _unit(vector)
        best: tuple[float, Any] | None = None
        rows = self._rows(
            "SELECT answer, tier, model, embedding FROM responses "
            "WHERE scope = ? AND created >= ? AND embedding IS NOT NULL",
            (scope_key, time.time() - self.ttl_s),
        )
        for answer, tier, model, blob in rows:
            stored = array("f")
            stored.frombytes(blob)
            if len(stored) != len(query):
                continue
            similarity = sum(a * b for a, b in zip(query, stored, strict=True))
            if similarity >= threshold and (best is None or similarity > best[0]):
                best = (similarity, (answer, tier, model))
        if best is None:
            return None
        answer, tier, model = best[1]
        return Hit(answer, tier, model, "semantic-hit", round(best[0], 4))

    def put(self, key: str, scope_key: str, tier: str, model: str, answer: str, vector: Sequence[float] | None) -> None:
        blob = array("f", _unit(vector)).tobytes() if vector is not None else None
        try:
            with self._db() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, scope_key, time.time(), tier, model, answer, blob),
                )
                conn.execute("DELETE FROM responses WHERE created < ?", (time.time() - self.ttl_s,))
        except db.UNUSABLE as exc:
            self._unusable(exc)

    def clear(self) -> int:
        if not self.path.exists():
            return 0
        with self._db() as conn:
            count = int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
            conn.execute("DELETE FROM responses")
        with self._db() as conn:
            conn.execute("VACUUM")
        return count


def _unit(vector: Sequence[float]) -> list[float]:
    values = [float(v) for v in vector]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class Lookup:
    """The cache's view of one request: its keys, its vector (computed at most once), and
    the store it is looked up in and kept in."""

    def __init__(
        self,
        store: ResponseCache,
        scope_key: str,
        messages: list[dict[str, str]],
        *,
        embed: Embed | None,
        threshold: float,
    ) -> None:
        self.store = store
        self.scope_key = scope_key
        self.key = exact_key(scope_key, messages)
        self.question = request_text(messages)
        self.embed = embed  # None: the semantic layer is off (or nobody gave an embedder)
        self.threshold = threshold
        self._vector: Sequence[float] | None = None
        self._embedded = False

    def vector(self) -> Sequence[float] | None:
        """The request's vector for the semantic layer; a failing embedder only costs the cache."""
        if self.embed is not None and not self._embedded:
            self._embedded = True
            try:
                self._vector = self.embed(self.question)
            except Exception as exc:
                log.warning("the semantic cache's embedder failed (%s); skipping it", exc)
        return self._vector

    def find(self) -> Hit | None:
        hit = self.store.get(self.key)
        if hit is None and self.embed is not None:
            vector = self.vector()
            hit = self.store.nearest(self.scope_key, vector, self.threshold) if vector else None
        return hit

    def keep(self, tier: str, model: str, text: str) -> None:
        try:
            self.store.put(self.key, self.scope_key, tier, model, text, self.vector())
        except Exception as exc:
            log.warning("could not store the answer in the cache: %s", exc)
