"""Chat conversations: kept in the state dir, one JSON file each, so they survive a restart.

`~/.local/state/tinyarms/conversations/<id>.json` (the platformdirs state dir, beside the
decision trace). A file holds the conversation's turns as sent: the user turn's full content
(the request with its labelled context) and the answer, so a later turn sends exactly what
the model saw before. Bounded twice: `conversations.max_turns` per file (oldest turns go
first) and `conversations.keep` files (the least recently updated go first). Writes go to a
temporary file and `os.replace`, so a crash or a second server never leaves half a file;
two servers writing one conversation at the same moment keep the later write.

Ids are the client's or a new random one; only `[A-Za-z0-9_-]{1,64}` is accepted, so an id
can never name a path outside the folder. `history(turns, budget)` is what a new turn
sends: the newest earlier turns that fit the budget, oldest dropped first, and how many were.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs
import platformdirs

from tinyarms.requests.context import tokens

log = logging.getLogger(__name__)

ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TITLE_CHARS = 60


class ConversationError(ValueError):
    """A bad conversation id, or one that does not exist where it must."""


@attrs.define(kw_only=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str  # what the user typed, or the answer
    content: str  # what the model was sent (the user's request with its context; the answer as is)
    at: float = attrs.field(factory=time.time)
    decision: dict[str, Any] | None = None  # on answers: the route, role, tier and why


@attrs.define(kw_only=True)
class Conversation:
    id: str
    title: str = ""
    created: float = attrs.field(factory=time.time)
    updated: float = attrs.field(factory=time.time)
    turns: list[Turn] = attrs.field(factory=list)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "turns": len(self.turns), "updated": round(self.updated, 3)}


def default_dir() -> Path:
    return platformdirs.user_state_path("tinyarms") / "conversations"


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def check_id(conversation: str) -> str:
    if not isinstance(conversation, str) or not ID.match(conversation):
        raise ConversationError(
            f"conversation id {conversation!r} is not valid: use 1-64 letters, digits, '-' or '_'"
        )
    return conversation


def title_of(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


_converter = cattrs.Converter()


class Store:
    def __init__(self, folder: Path | None = None, *, keep: int = 100, max_turns: int = 100) -> None:
        self.folder = folder or default_dir()
        self.keep = keep
        self.max_turns = max_turns

    def _path(self, conversation: str) -> Path:
        return self.folder / f"{check_id(conversation)}.json"

    def load(self, conversation: str) -> Conversation | None:
        """The conversation, or None when there is none by that id (or its file is unreadable)."""
        path = self._path(conversation)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            loaded = _converter.structure(data, Conversation)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
            log.warning("conversation %s is unreadable (%s); starting it afresh", conversation, exc)
            return None
        return loaded if loaded.id == conversation else None

    def open(self, conversation: str | None, first_text: str) -> Conversation:
        """The conversation to continue, or a new one (with the client's id when it gave one)."""
        if conversation is not None:
            found = self.load(conversation)
            if found is not None:
                return found
        return Conversation(id=conversation or new_id(), title=title_of(first_text))

    def save(self, conversation: Conversation) -> None:
        conversation.updated = time.time()
        if len(conversation.turns) > self.max_turns:
            del conversation.turns[: len(conversation.turns) - self.max_turns]
        self.folder.mkdir(parents=True, exist_ok=True)
        data = json.dumps(_converter.unstructure(conversation), ensure_ascii=False)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(data)
            os.replace(temporary, self._path(conversation.id))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._prune()

    def _files(self) -> list[Path]:
        try:
            return [p for p in self.folder.glob("*.json") if ID.match(p.stem)]
        except OSError:
            return []

    def _prune(self) -> None:
        files = sorted(self._files(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[self.keep :]:
            with contextlib.suppress(OSError):
                old.unlink()

    def list(self) -> list[Conversation]:
        """Every kept conversation, the most recently updated first."""
        found = [c for c in (self.load(p.stem) for p in self._files()) if c is not None]
        return sorted(found, key=lambda c: c.updated, reverse=True)

    def delete(self, conversation: str) -> bool:
        try:
            self._path(conversation).unlink()
        except FileNotFoundError:
            return False
        return True


@attrs.frozen
class History:
    messages: list[dict[str, str]]
    dropped: int  # earlier turns left out to fit the budget

    def note(self) -> str | None:
        if not self.dropped:
            return None
        turns = "turn" if self.dropped == 1 else "turns"
        return f"the {self.dropped} oldest {turns} of this conversation were left out to fit the context budget"


def history(turns: Sequence[Turn], budget: int) -> History:
    """The newest earlier turns (as chat messages) that fit `budget` tokens; whole question/answer pairs."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        cost = tokens(turn.content) + 4  # a few tokens of role markup per message
        if used + cost > budget:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    while kept and kept[0].role != "user":  # never start with an answer whose question was cut
        kept.pop(0)
    return History(
        messages=[{"role": t.role, "content": t.content} for t in kept], dropped=len(turns) - len(kept)
    )
