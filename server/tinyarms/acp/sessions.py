"""ACP sessions: the workspace, the mode, the conversation, and what the user allowed for good.

A session is saved after each prompt (state dir, `acp-sessions/ID.json`: cwd, mode and the
text of each turn, never file contents or keys), so `session/load` can replay it to the
client and go on with the same conversation. Modes:

- `ask`: the agent may look (list, read, search) but changes nothing;
- `agent`: edits, commands and MCP tools each need the user's permission first
  (`session/request_permission`); "always" in the answer allows that kind for the session;
- `auto`: edits and allowed commands without asking (the `[agent]` limits still apply).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import platformdirs
from attrs import define, field

from tinyarms.agent.mcp import McpServerSpec

log = logging.getLogger(__name__)

MODES = {
    "ask": ("Ask", "Looks at files to answer; changes nothing."),
    "agent": ("Agent", "Edits files and runs allowed commands, asking before each."),
    "auto": ("Agent (no asking)", "Edits files and runs allowed commands without asking; limits still apply."),
}
DEFAULT_MODE = "agent"
MAX_TURNS = 40  # turns kept for the next prompt's context


def sessions_dir() -> Path:
    return platformdirs.user_state_path("tinyarms") / "acp-sessions"


@define
class Session:
    id: str
    cwd: Path
    mode: str = DEFAULT_MODE
    history: list[dict[str, str]] = field(factory=list)  # {"role": "user" | "assistant", "content"}
    mcp_servers: list[McpServerSpec] = field(factory=list)  # from the client, not saved (they hold env values)
    always: set[str] = field(factory=set)  # permission kinds allowed for the rest of the session
    runs: list[Any] = field(factory=list)  # the session's agent runs, for /undo
    running: Any = None

    @classmethod
    def new(cls, cwd: Path) -> Session:
        return cls(uuid.uuid4().hex, cwd)

    def save(self) -> None:
        path = sessions_dir() / f"{self.id}.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = {"cwd": str(self.cwd), "mode": self.mode, "history": self.history[-MAX_TURNS:]}
            path.write_text(json.dumps(data), encoding="utf-8")
        except OSError as exc:  # saving is for session/load; a full disk must not fail the prompt
            log.warning("could not save ACP session %s: %s", self.id, exc)

    @classmethod
    def load(cls, session_id: str, cwd: Path) -> Session | None:
        if not re.fullmatch(r"[0-9a-f]{32}", session_id):
            return None
        try:
            data = json.loads((sessions_dir() / f"{session_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        mode = data.get("mode") if data.get("mode") in MODES else DEFAULT_MODE
        turns = data.get("history") or []
        history = [t for t in turns if isinstance(t, dict) and t.get("role") in ("user", "assistant")]
        return cls(session_id, cwd, mode, history)
