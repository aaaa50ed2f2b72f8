"""What a role's model is asked: the role's instruction, the route's task, the selected
code, the request.

One place for every front door (the LSP `tinyarms.ask`, `tinyarms ask`), so an editor
and a terminal ask the same question the same way. A route's task is data:
`[routes.NAME] instruction` (roles/base.toml ships one per route), so a route a user adds
in TOML reaches the model with its own instruction: as the request when the user typed
only `/NAME` (or nothing), else as the task in the system message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tinyarms.router.rules import Rules

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

def build_messages(
    text: str, decision: Decision, selection: str, routes: Mapping[str, Route]
) -> list[dict[str, str]]:
    """System instruction for the role (and the route's task), then the code (if any) and the
    request, with a slash command (`/NAME`, an alias, `/chat`) spelled out as its route's instruction."""
    request, task = text.strip(), _instruction(routes, decision.route)
    slash = Rules([name for name, route in routes.items() if route.enabled], keywords={}).slash(request)
    if slash is not None:  # the slash named a route (or `/chat`): its instruction replaces it
        instruction = _instruction(routes, slash.route)
        request, task = f"{instruction} {slash.rest}".strip(), ""
    elif task and not request:
        request, task = task, ""  # an empty request sent to a route asks what the route does
    system = SYSTEM.get(decision.role, SYSTEM["chat"])
    if task:
        system += f"\n\nThe task: {task}"
    user = f"```\n{selection.rstrip()}\n```\n\n{request}" if selection.strip() else request
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _instruction(routes: Mapping[str, Route], name: str | None) -> str:
    route = routes.get(name) if name else None
    return route.instruction.strip() if route is not None else ""
