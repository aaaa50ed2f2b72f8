"""The role handler that answers: a routed request runs on its role's tier chain.

`CommandsFeature` routes `tinyarms.ask` and hands the decision here. This module turns
the request into chat messages (the route's instruction, the selected code, the
question), calls `tiers.run_role` (retries, fallbacks, budgets, cache and the decision
trace live there) and streams the answer to the editor as `tinyarms/stream`
notifications. Every failure reaches the editor as a clear error naming each tier.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from tinyarms import protocol, tiers
from tinyarms.router.decision import Decision

if TYPE_CHECKING:
    from tinyarms.features.commands import AskRequest
    from tinyarms.server import TinyarmsServer

log = logging.getLogger(__name__)

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


class TiersHandler:
    """Answers a decision on its role's tier chain, streaming to the editor."""

    def __init__(self, server: TinyarmsServer) -> None:
        self.server = server

    async def handle(self, request: AskRequest, decision: Decision) -> dict[str, Any]:
        config = self.server.config
        if config is None:
            raise RuntimeError("tinyarms: the config has errors; fix them to ask (see the diagnostics)")
        selection = self._selection(request)
        messages = build_messages(request.text, decision, selection)
        stream_id = request.stream_id

        def on_delta(delta: str) -> None:
            if stream_id is not None:
                self.server.protocol.notify(protocol.STREAM_NOTIFICATION, {"stream_id": stream_id, "delta": delta})

        def on_restart(reason: str) -> None:
            if stream_id is not None:
                self.server.protocol.notify(
                    protocol.STREAM_NOTIFICATION, {"stream_id": stream_id, "restart": True, "reason": reason}
                )

        try:
            answer = await tiers.run_role(
                config,
                decision.role,
                messages,
                tier=decision.tier,
                decision=decision,
                on_delta=on_delta,
                on_restart=on_restart,
                context=hashlib.sha256(selection.encode()).hexdigest() if selection else "",
            )
        except tiers.AllTiersFailed as exc:
            # The message names every tier and why; it never holds a key or the code.
            raise RuntimeError(str(exc)) from exc
        self.server.notify_status(
            "decision",
            {
                "route": decision.route,
                "role": decision.role,
                "tier": answer.tier,
                "model": answer.model,
                "elapsed_ms": answer.trace.get("latency_ms"),
                "cost_usd": answer.cost_usd,
            },
        )
        return {"text": answer.text, "decision": decision.to_dict(), "trace": answer.trace}

    def _selection(self, request: AskRequest) -> str:
        """The selected code, unless the client already put it in the text."""
        if not (request.uri and request.range):
            return ""
        try:
            document = self.server.workspace.get_text_document(request.uri)
            lines = document.lines
            start, end = request.range["start"], request.range["end"]
            if not lines or start["line"] >= len(lines):
                return ""
            if start["line"] == end["line"]:
                text = lines[start["line"]][start["character"] : end["character"]]
            else:
                first = lines[start["line"]][start["character"] :]
                middle = lines[start["line"] + 1 : end["line"]]
                last = lines[end["line"]][: end["character"]] if end["line"] < len(lines) else ""
                text = first + "".join(middle) + last
        except (KeyError, TypeError, IndexError, OSError) as exc:
            log.warning("ask: could not read the selection of %s: %s", request.uri, exc)
            return ""
        return "" if text.strip() and text.strip() in request.text else text


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
