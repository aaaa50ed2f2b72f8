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
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from tinyarms import protocol, tiers
from tinyarms.prompts import build_messages

if TYPE_CHECKING:
    from tinyarms.features.commands import AskRequest
    from tinyarms.router.decision import Decision
    from tinyarms.server import TinyarmsServer

log = logging.getLogger(__name__)


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
            start, end = (
                types.Position(p["line"], p["character"]) for p in (request.range["start"], request.range["end"])
            )
            # offset_at_position converts the client's UTF-16 columns and clamps past-the-end positions.
            text = document.source[document.offset_at_position(start) : document.offset_at_position(end)]
        except (KeyError, TypeError, OSError) as exc:
            log.warning("ask: could not read the selection of %s: %s", request.uri, exc)
            return ""
        return "" if text.strip() and text.strip() in request.text else text
