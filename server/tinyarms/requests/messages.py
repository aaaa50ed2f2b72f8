"""What a role's model is asked: the role's instruction, the selected code, the request.

One place for every front door (the LSP `tinyarms.ask`, `tinyarms ask`), so an editor
and a terminal ask the same question the same way.
"""

from __future__ import annotations

import re

from tinyarms.router.decision import Decision

SYSTEM = {
    "chat": "You are tinyarms, a concise coding assistant inside the user's editor. Answer in Markdown.",
    "edit": "You are tinyarms, a careful code editor. Reply with the changed code in one fenced code block, "
    "then at most two sentences on what changed.",
    "agent": "You are tinyarms, a coding agent planning changes across a project. Reply with a short numbered "
    "plan, then the first concrete change.",
}

# What a bare slash command asks for, when the user typed nothing after it.
ROUTE_REQUEST = {
    "explain": "Explain what this code does.",
    "generate": "Write the code described here.",
    "refactor": "Refactor this code to be clearer without changing its behaviour.",
    "fix": "Find and fix the bug in this code.",
    "test": "Write unit tests for this code.",
    "document": "Write documentation (docstrings and comments) for this code.",
    "review": "Review this code: correctness, clarity, risks.",
    "plan": "Plan the steps for this change.",
}

SLASH = re.compile(r"^\s*/([A-Za-z][\w-]*)\s*")


def build_messages(text: str, decision: Decision, selection: str) -> list[dict[str, str]]:
    """System instruction for the role, then the code (if any) and the request, slash command spelled out."""
    request = text
    match = SLASH.match(text)
    if match and match.group(1) in ROUTE_REQUEST:
        rest = text[match.end() :].strip()
        request = f"{ROUTE_REQUEST[match.group(1)]} {rest}".strip()
    elif not text.strip() and decision.route in ROUTE_REQUEST:
        request = ROUTE_REQUEST[decision.route]
    user = f"```\n{selection.rstrip()}\n```\n\n{request}" if selection.strip() else request
    return [{"role": "system", "content": SYSTEM.get(decision.role, SYSTEM["chat"])}, {"role": "user", "content": user}]
