"""Chat in the editor: `tinyarms.chat`, `tinyarms.chat.list`, `tinyarms.chat.delete`, and the
Explain / Review code actions.

A thin adapter over `requests/`: the LSP side reads the document (the client's UTF-16
columns), the workspace folders and the diagnostics the editor showed in the range, and
streams the answer; `requests/context.py` gathers the labelled context within the role's
budget, `requests/chat.py` builds the turn's messages with the earlier turns that fit, and
`requests/conversations.py` keeps the conversation in the state dir.

Free text is routed (slash commands are decided by the router's first stage, without the
encoder); the routed role answers on its tier chain. When that role is `edit` and the chat
was about a range, the result carries an action that applies the answer as an edit
(`tinyarms.edit` with the answer, so no second model call); when it is `agent`, an action
that starts the agent with the request as its goal.

Streaming: `$/progress` under the client's `workDoneToken` (begin names the conversation,
each report's `message` is the next piece of the answer, end gives the decision), and
`tinyarms/stream` notifications for a `stream_id`; a client may ask for either or both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from tinyarms import protocol, tiers
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.features.documents import Documents
from tinyarms.requests import chat as chat_request
from tinyarms.requests import context
from tinyarms.requests.conversations import ConversationError, Store, Turn
from tinyarms.requests.decide import RequestError
from tinyarms.requests.feedback import RecentRequests

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import Config
    from tinyarms.requests.routing import Routing
    from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

class Stream:
    """Where the pieces of one answer go: `$/progress` under a token, `tinyarms/stream` under an id."""

    def __init__(self, server: LanguageServer, token: str | int | None, stream_id: str | None, title: str) -> None:
        self.server, self.token, self.stream_id = server, token, stream_id
        if token is not None:
            self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, message=title))

    def delta(self, text: str) -> None:
        if self.token is not None:
            self.server.work_done_progress.report(self.token, types.WorkDoneProgressReport(message=text))
        if self.stream_id is not None:
            self.server.protocol.notify(protocol.STREAM_NOTIFICATION, {"stream_id": self.stream_id, "delta": text})

    def restart(self, reason: str) -> None:
        if self.token is not None:
            message = f"(restarted: {reason})"
            self.server.work_done_progress.report(self.token, types.WorkDoneProgressReport(message=message))
        if self.stream_id is not None:
            self.server.protocol.notify(
                protocol.STREAM_NOTIFICATION, {"stream_id": self.stream_id, "restart": True, "reason": reason}
            )

    def end(self, message: str) -> None:
        if self.token is not None:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))


def decision_line(decision: dict[str, Any]) -> str:
    """"explain -> team · 840 ms · $0.0004", the one line an end report or a status bar shows."""
    parts = [f"{decision.get('route') or decision.get('role')} -> {decision.get('tier')}"]
    if decision.get("elapsed_ms") is not None:
        parts.append(f"{decision['elapsed_ms']:.0f} ms")
    if decision.get("cost_usd"):
        parts.append(f"${decision['cost_usd']:.4f}")
    return " · ".join(parts)


def answered_decision(decision: Decision, answer: tiers.Answer) -> dict[str, Any]:
    """The routing decision with what happened: the tier that answered, its model, latency and cost."""
    out = decision.to_dict()
    if answer.tier != decision.tier:
        out["routed_tier"] = decision.tier
    out.update(tier=answer.tier, model=answer.model, elapsed_ms=answer.trace.get("latency_ms"),
               cost_usd=answer.cost_usd)  # fmt: skip
    return out


def usage_of(answer: tiers.Answer) -> dict[str, Any]:
    usage = answer.usage
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.prompt_tokens + usage.completion_tokens}  # fmt: skip
    if getattr(usage, "estimated", False):
        out["estimated"] = True
    return out


class ChatFeature(Feature):
    def __init__(
        self, server: LanguageServer, settings: Settings, status: Status, routing: Routing, documents: Documents,
        recent: RecentRequests | None = None,
    ) -> None:
        super().__init__(server, settings, status)
        self.routing = routing
        self.documents = documents
        self.recent = recent if recent is not None else RecentRequests()  # for feedback and tinyarms.reask

    def store(self, config: Config) -> Store:
        return Store(keep=config.conversations.keep, max_turns=config.conversations.max_turns)

    # -- commands ---------------------------------------------------------------------

    async def chat(self, args: protocol.ChatArgs) -> dict[str, Any]:
        start = time.perf_counter()
        config = await self.settings.require()
        store = self.store(config)
        try:
            conversation = store.open(args.conversation, args.text)
            decision = await self.routing.decide(config, args.text)
        except (ConversationError, RequestError) as exc:
            raise JsonRpcInvalidParams(f"{protocol.CHAT}: {exc}") from None
        self.status.notify("decision", {"route": decision.route, "role": decision.role, "tier": decision.tier,
                                        "elapsed_ms": round((time.perf_counter() - start) * 1000, 3)})  # fmt: skip
        budget = chat_request.budget(config, decision.role, decision.tier)
        request_tokens = context.tokens(args.text)
        share = (budget * 2 // 3 if conversation.turns else budget) - request_tokens  # leave room for earlier turns
        where = self.documents.where(args.uri, args.range)
        gathered = context.gather(
            args.text, budget=max(share, 0), roots=self.documents.roots(args.uri), where=where,
            diagnostics=self.documents.diagnostics(args.uri),
        )  # fmt: skip
        turn = chat_request.turn_messages(args.text, decision, gathered, conversation.turns, budget, config.routes)
        stream = Stream(self.server, args.workDoneToken, args.stream_id, f"tinyarms chat {conversation.id}")
        try:
            answer = await tiers.run_role(
                config, decision.role, turn.messages, tier=decision.tier, decision=decision,
                on_delta=stream.delta, on_restart=stream.restart, embed=await self.routing.embedder(config),
            )  # fmt: skip
        except tiers.AllTiersFailed as exc:
            stream.end(f"no answer: {exc}")
            raise RuntimeError(str(exc)) from exc  # names every tier and why; never a key or the code
        except BaseException:
            stream.end("cancelled")
            raise
        shown = answered_decision(decision, answer)
        if isinstance(answer.trace.get("id"), str):
            self.recent.remember(answer.trace["id"], args.text, decision, messages=turn.messages, tier=answer.tier)
        conversation.turns.append(Turn(role="user", text=args.text, content=turn.content))
        conversation.turns.append(Turn(role="assistant", text=answer.text, content=answer.text, decision=shown))
        try:
            store.save(conversation)
        except OSError as exc:  # the answer still reaches the user; the next turn starts afresh
            log.warning("chat: the conversation could not be saved: %s", exc)
        stream.end(decision_line(shown))
        self.status.notify("decision", {k: shown.get(k) for k in ("route", "role", "tier", "model", "elapsed_ms",
                                                                  "cost_usd")})  # fmt: skip
        sent = gathered.sent()
        if turn.history.messages or turn.history.dropped:
            piece: dict[str, Any] = {"kind": "history", "tokens": sum(context.tokens(m["content"])
                                                                     for m in turn.history.messages),
                                     "turns": len(turn.history.messages)}  # fmt: skip
            if turn.history.note():
                piece["note"] = turn.history.note()
            sent.insert(0, piece)
        return {
            "text": answer.text,
            "decision": shown,
            "conversation": conversation.id,
            "usage": usage_of(answer),
            "cost_usd": answer.cost_usd,
            "context": sent,
            "actions": self._actions(args, decision, answer.text),
            "note": turn.history.note(),
            "trace": answer.trace,
        }

    def list_conversations(self, args: protocol.ChatListArgs) -> dict[str, Any]:
        config = self.settings.config
        store = self.store(config) if config else Store()
        return {"conversations": [c.summary() for c in store.list()]}

    def delete(self, args: protocol.ChatDeleteArgs) -> dict[str, Any]:
        config = self.settings.config
        store = self.store(config) if config else Store()
        try:
            return {"deleted": store.delete(args.conversation)}
        except ConversationError as exc:
            raise JsonRpcInvalidParams(f"{protocol.CHAT_DELETE}: {exc}") from None

    def _actions(self, args: protocol.ChatArgs, decision: Decision, answer: str) -> list[dict[str, Any]]:
        if decision.role == "edit" and args.uri and args.range is not None:
            version = self.documents.version(args.uri)
            argument: dict[str, Any] = {"uri": args.uri, "range": _range_dict(args.range), "instruction": args.text,
                                        "version": version, "answer": answer}  # fmt: skip
            return [{"title": "Apply as an edit", "command": protocol.EDIT, "arguments": [argument]}]
        if decision.role == "agent":
            goal: dict[str, Any] = {"goal": args.text}
            if args.uri:
                goal["uri"] = args.uri
            if args.range is not None:
                goal["range"] = _range_dict(args.range)
            return [{"title": "Start the agent", "command": protocol.AGENT, "arguments": [goal]}]
        return []

    # -- code actions -----------------------------------------------------------------

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """The chat routes' actions (roles/base.toml: Explain, Review) on a non-empty selection: a chat turn."""
        if params.range.start == params.range.end or self.settings.config is None:
            return []
        argument = {"text": "", "uri": params.text_document.uri, "range": _range_dict(params.range)}
        return [
            types.CodeAction(title=title, kind=kind, command=types.Command(
                title=title, command=protocol.CHAT, arguments=[{**argument, "text": slash}]))
            for title, slash, kind in route_actions(self.settings.config, "chat")
            if wanted(kind, params.context.only)
        ]  # fmt: skip


def route_actions(config: Config, role: str) -> list[tuple[str, str, types.CodeActionKind]]:
    """(title, slash command, kind) of each enabled route of `role` that offers a code action
    (`[routes.NAME] action`), in config order: a route a user adds in TOML gets one too."""
    return [
        (route.action, f"/{name}", types.CodeActionKind(route.action_kind))
        for name, route in config.routes.items()
        if route.action and route.enabled and route.role == role
    ]


def wanted(kind: types.CodeActionKind, only: Sequence[Any] | None) -> bool:
    """Whether a code action of `kind` is among the kinds the client asked `only` for."""
    return not only or any(str(kind.value).startswith(str(getattr(o, "value", o))) for o in only)


def _range_dict(selection: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": selection.start.line, "character": selection.start.character},
        "end": {"line": selection.end.line, "character": selection.end.character},
    }
