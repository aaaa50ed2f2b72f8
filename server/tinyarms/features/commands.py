"""Routed requests: `tinyarms.route`, `tinyarms.ask` and the code actions that start them.

The router loads in the background after `initialized` (the encoder takes a second or
more; an ONNX export on first use much longer), so `initialize` never waits for it;
requests wait for it with a bounded timeout. `tinyarms.ask` routes the request (unless a
role is given) and hands the decision to a `RoleHandler`, the one interface through which
roles run: `answers.TiersHandler`, which runs the role's tier chain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import attrs
from attrs import define
from lsprotocol import types

from tinyarms import protocol
from tinyarms.features.answers import TiersHandler
from tinyarms.features.base import Feature
from tinyarms.router.decision import Decision

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.router import Router
    from tinyarms.server import TinyarmsServer

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0  # a first start may export the encoder to ONNX (about a minute on 2 busy cores)

# (title, slash command, code action kind) for a selection.
CODE_ACTIONS = (
    ("tinyarms: Explain", "/explain", types.CodeActionKind.Empty),
    ("tinyarms: Refactor", "/refactor", types.CodeActionKind.RefactorRewrite),
    ("tinyarms: Fix", "/fix", types.CodeActionKind.QuickFix),
    ("tinyarms: Write tests", "/test", types.CodeActionKind.Empty),
    ("tinyarms: Document", "/document", types.CodeActionKind.Empty),
    ("tinyarms: Review", "/review", types.CodeActionKind.Empty),
)


@define(kw_only=True)
class AskRequest:
    text: str
    role: str | None = None
    tier: str | None = None
    uri: str | None = None
    range: dict[str, Any] | None = None
    stream_id: str | None = None


class RoleHandler(Protocol):
    async def handle(self, request: AskRequest, decision: Decision) -> dict[str, Any]:
        """Run the request on the decision's role and tier; return at least {"text", "decision"}."""
        ...


def _router_inputs(config: Config) -> Any:
    """What the router is built from; a config change elsewhere does not reload it."""
    return (attrs.asdict(config.router), {k: attrs.asdict(v) for k, v in config.routes.items()},
            attrs.asdict(config.roles))  # fmt: skip


class CommandsFeature(Feature):
    def __init__(self, server: TinyarmsServer) -> None:
        super().__init__(server)
        self.handler: RoleHandler = TiersHandler(server)
        self.router: Router | None = None
        self.error: str | None = None
        self.ready = asyncio.Event()
        self._loading: asyncio.Task[None] | None = None
        self._inputs: Any = None

    async def initialized(self) -> None:
        self._start_loading()

    def shutdown(self) -> None:
        from tinyarms import tiers

        asyncio.ensure_future(tiers.aclose())  # pooled HTTP connections to cloud tiers

    def config_changed(self, config: Config) -> None:
        if self._loading is not None and _router_inputs(config) != self._inputs:
            self._start_loading()

    def _start_loading(self) -> None:
        config = self.server.config
        if config is None:
            self.error = "the config has errors; the router is not loaded"
            self.ready.set()
            return
        self._inputs = _router_inputs(config)
        self._loading = asyncio.ensure_future(self._load(config))

    async def _load(self, config: Config) -> None:
        from tinyarms.router import load_router

        start = time.perf_counter()
        try:
            self.router = await asyncio.to_thread(load_router, config)
            self.error = None
            log.info("router ready in %.1f s", time.perf_counter() - start)
        except Exception as exc:
            self.error = f"the router could not load: {exc}"
            log.exception("router failed to load")
        finally:
            self.ready.set()

    async def _router(self) -> Router:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout=READY_TIMEOUT_S)
        except asyncio.TimeoutError as exc:
            raise RuntimeError(f"the router is still loading after {READY_TIMEOUT_S:.0f} s") from exc
        if self.router is None:
            raise RuntimeError(self.error or "the router is not loaded")
        return self.router

    def commands(self) -> dict[str, Any]:
        return {protocol.ROUTE: self.route, protocol.ASK: self.ask}

    async def route(self, *args: Any) -> dict[str, Any]:
        text = _argument(args).get("text")
        if not isinstance(text, str):
            raise ValueError('tinyarms.route needs {"text": "..."}')
        start = time.perf_counter()
        decision = await self._decide(text)
        self._report(decision, start)
        return decision.to_dict()

    async def ask(self, *args: Any) -> dict[str, Any]:
        raw = _argument(args)
        if not isinstance(raw.get("text"), str):
            raise ValueError('tinyarms.ask needs {"text": "..."}')
        fields = {f.name for f in attrs.fields(AskRequest)}
        request = AskRequest(**{k: v for k, v in raw.items() if k in fields})
        start = time.perf_counter()
        await asyncio.wait_for(self.server.config_feature.loaded.wait(), timeout=READY_TIMEOUT_S)
        if request.role:
            decision = self._explicit_role(request)
        else:
            decision = await self._decide(request.text)
            if request.tier:
                decision = attrs.evolve(decision, tier=request.tier)
        self._report(decision, start)
        return await self.handler.handle(request, decision)

    async def _decide(self, text: str) -> Decision:
        router = await self._router()
        return await asyncio.to_thread(router.route, text)

    def _explicit_role(self, request: AskRequest) -> Decision:
        config = self.server.config
        role = request.role or "chat"
        if config is None:
            raise RuntimeError("tinyarms: the config has errors; fix them to ask (see the diagnostics)")
        if role not in ("chat", "edit", "agent"):
            raise ValueError(f"unknown role '{role}'; expected chat, edit or agent")
        return Decision.explicit(role, request.tier or config.roles.get(role).tier)

    def _report(self, decision: Decision, start: float) -> None:
        elapsed = round((time.perf_counter() - start) * 1000, 3)
        self.server.notify_status(
            "decision",
            {"route": decision.route, "role": decision.role, "tier": decision.tier, "elapsed_ms": elapsed},
        )

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """The request actions, offered on a non-empty selection."""
        selection = params.range
        if selection.start == selection.end:
            return []
        where = {
            "uri": params.text_document.uri,
            "range": {
                "start": {"line": selection.start.line, "character": selection.start.character},
                "end": {"line": selection.end.line, "character": selection.end.character},
            },
        }
        only = params.context.only
        return [
            types.CodeAction(
                title=title, kind=kind,
                command=types.Command(title=title, command=protocol.ASK, arguments=[{"text": slash, **where}]),
            )  # fmt: skip
            for title, slash, kind in CODE_ACTIONS
            if not only or any(str(kind.value).startswith(str(getattr(o, "value", o))) for o in only)
        ]


def _argument(args: tuple[Any, ...]) -> dict[str, Any]:
    """executeCommand arguments: one JSON object (some clients nest it in a list)."""
    value: Any = args[0] if args else {}
    while isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, dict):
        raise ValueError("expected one JSON object as the command's argument")
    return value
