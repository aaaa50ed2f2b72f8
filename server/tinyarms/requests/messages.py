"""What a role's model is asked: the role's instruction, the route's task, the selected
code, the request.

One place for every front door (the LSP `tinyarms.ask`, `tinyarms ask`), so an editor
and a terminal ask the same question the same way. A route's task is data:
`[routes.NAME] instruction` (roles/base.toml ships one per route), so a route a user adds
in TOML reaches the model with its own instruction: as the request when the user typed
only `/NAME` (or nothing), else as the task in the system message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyarms.config.schema import Route
    from tinyarms.router.decision import Decision

SYSTEM = {
    "chat": "You are tinyarms, a concise coding assistant inside the user's editor. Answer in Markdown.",
    "edit": "You are tinyarms, a careful code editor. Reply with the changed code in one fenced code block, "
    "then at most two sentences on what changed.",
    "agent": "You are tinyarms, a coding agent planning changes across a project. Reply with a short numbered "
    "plan, then the first concrete change.",
}

SLASH = re.compile(r"^\s*/([A-Za-z][\w-]*)\s*")


def build_messages(
    text: str, decision: Decision, selection: str, routes: Mapping[str, Route]
) -> list[dict[str, str]]:
    """System instruction for the role (and the route's task), then the code (if any) and the
    request, with a slash command spelled out as its route's instruction."""
    route = routes.get(decision.route) if decision.route else None
    task = route.instruction.strip() if route is not None else ""
    request = text.strip()
    match = SLASH.match(text)
    if match and decision.stage == "explicit":  # the slash named the route (or `/chat`): drop it
        request = text[match.end() :].strip()
    if task and not request:
        request, task = task, ""  # the route's instruction is the request itself
    elif task and match and decision.stage == "explicit":
        request, task = f"{task} {request}", ""
    system = SYSTEM.get(decision.role, SYSTEM["chat"])
    if task:
        system += f"\n\nThe task: {task}"
    user = f"```\n{selection.rstrip()}\n```\n\n{request}" if selection.strip() else request
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
