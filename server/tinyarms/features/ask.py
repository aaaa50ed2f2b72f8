"""Routed requests over LSP: `tinyarms.route`, `tinyarms.ask` and the code actions that
start them. A thin adapter over `requests/` (decide, messages, the tier chain): this
module reads the selection (the client's UTF-16 columns), streams the answer as
`tinyarms/stream` notifications and puts the decision on the status bar.

The router loads in the background after `initialized` (see requests/routing.py), so
`initialize` never waits for it; a router that cannot load answers through the fallback
role, exactly as `tinyarms ask` does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from tinyarms import protocol, tiers
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.requests import feedback, reask
from tinyarms.requests.answer import Request, ask
from tinyarms.requests.decide import RequestError
from tinyarms.requests.routing import Routing

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer
    from pygls.workspace import Workspace

    from tinyarms.config import Config
    from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

class AskFeature(Feature):
    def __init__(self, server: LanguageServer, settings: Settings, status: Status) -> None:
        super().__init__(server, settings, status)
        self.routing = Routing()
        self.recent = feedback.RecentRequests()  # trace id -> text, for route corrections

    async def initialized(self) -> None:
        if self.settings.config is not None:
            self.routing.load(self.settings.config)  # in the background: the first request needs it

    def config_changed(self, config: Config) -> None:
        self.routing.config_changed(config)

    def shutdown(self) -> None:
        asyncio.ensure_future(tiers.aclose())  # pooled HTTP connections to cloud tiers

    # -- commands ---------------------------------------------------------------------

    async def route(self, args: protocol.RouteArgs) -> dict[str, Any]:
        """`tinyarms.route`: the decision `tinyarms.ask` would take, without a model call."""
        start = time.perf_counter()
        config = await self.settings.require()
        decision = await self.routing.decide(config, args.text)
        self._report(decision, start)
        return decision.to_dict()

    async def ask(self, args: protocol.AskArgs) -> dict[str, Any]:
        """`tinyarms.ask`: route (unless a role is given), answer, stream."""
        start = time.perf_counter()
        config = await self.settings.require()
        request = Request(text=args.text, role=args.role, tier=args.tier, selection=self._selection(args))
        try:
            answered = await ask(
                config,
                request,
                self.routing,
                on_decision=lambda decision: self._report(decision, start),
                on_delta=lambda delta: self._stream(args.stream_id, {"delta": delta}),
                on_restart=lambda reason: self._stream(args.stream_id, {"restart": True, "reason": reason}),
            )
        except RequestError as exc:
            raise JsonRpcInvalidParams(f"{protocol.ASK}: {exc}") from None
        except tiers.AllTiersFailed as exc:
            # The message names every tier and why; it never holds a key or the code.
            raise RuntimeError(str(exc)) from exc
        decision, answer = answered.decision, answered.answer
        if isinstance(answer.trace.get("id"), str):
            self.recent.remember(
                answer.trace["id"], args.text, decision, messages=answered.messages, tier=answer.tier
            )
        self.status.notify(
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

    async def feedback(self, args: protocol.AnswerFeedbackArgs) -> dict[str, Any]:
        """`tinyarms.feedback`: a rating, an outcome or a route correction into the trace."""
        config = await self.settings.require()
        try:
            return feedback.record(
                config, self.recent, trace_id=args.trace_id, rating=args.rating, route=args.route, outcome=args.outcome
            )
        except feedback.FeedbackError as exc:
            raise JsonRpcInvalidParams(f"{protocol.FEEDBACK}: {exc}") from None

    async def reask(self, args: protocol.ReaskArgs) -> dict[str, Any]:
        """`tinyarms.reask`: "try a stronger tier" on a remembered answer (requests/reask.py)."""
        config = await self.settings.require()
        try:
            done = await reask.reask(
                config, self.recent, self.routing, trace_id=args.trace_id, tier=args.tier,
                on_delta=lambda delta: self._stream(args.stream_id, {"delta": delta}),
                on_restart=lambda reason: self._stream(args.stream_id, {"restart": True, "reason": reason}),
            )  # fmt: skip
        except feedback.FeedbackError as exc:
            raise JsonRpcInvalidParams(f"{protocol.REASK}: {exc}") from None
        except tiers.AllTiersFailed as exc:
            raise RuntimeError(str(exc)) from exc
        answer = done.answer
        self.status.notify(
            "decision",
            {"route": done.decision.route, "role": done.decision.role, "tier": answer.tier, "model": answer.model,
             "elapsed_ms": answer.trace.get("latency_ms"), "cost_usd": answer.cost_usd},
        )  # fmt: skip
        decision = done.decision.to_dict()
        return {"text": answer.text, "decision": decision, "trace": answer.trace, "reask_of": done.original}

    def _stream(self, stream_id: str | None, payload: dict[str, Any]) -> None:
        if stream_id is not None:
            self.server.protocol.notify(protocol.STREAM_NOTIFICATION, {"stream_id": stream_id, **payload})

    def _report(self, decision: Decision, start: float) -> None:
        elapsed = round((time.perf_counter() - start) * 1000, 3)
        self.status.notify(
            "decision",
            {"route": decision.route, "role": decision.role, "tier": decision.tier, "elapsed_ms": elapsed},
        )

    def _selection(self, args: protocol.AskArgs) -> str:
        """The selected code, unless the client already put it in the text."""
        if not (args.uri and args.range):
            return ""
        if not readable(self.server.workspace, args.uri):
            # pygls would read any path from disk: a request must not make tinyarms send ~/.ssh/id_rsa.
            raise JsonRpcInvalidParams(
                f"tinyarms.ask: {args.uri} is neither open in the editor nor inside a workspace folder; not read"
            )
        try:
            document = self.server.workspace.get_text_document(args.uri)
            # offset_at_position converts the client's UTF-16 columns and clamps past-the-end positions.
            start, end = (document.offset_at_position(p) for p in (args.range.start, args.range.end))
            text = document.source[start:end]
        except (KeyError, TypeError, OSError) as exc:
            log.warning("ask: could not read the selection of %s: %s", args.uri, exc)
            return ""
        return "" if text.strip() and text.strip() in args.text else text


def readable(workspace: Workspace, uri: str) -> bool:
    """Whether a request may read `uri`: a document open in the editor, or a file inside a
    workspace folder once symlinks are resolved (a link out of the workspace is outside)."""
    if uri in workspace.text_documents:
        return True
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if not path:
        return False
    target = Path(path).resolve()
    roots = [to_fs_path(folder.uri) for folder in workspace.folders.values()] + [workspace.root_path]
    return any(root and target.is_relative_to(Path(root).resolve()) for root in roots)
