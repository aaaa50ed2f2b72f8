"""What every feature shares: the LSP server it talks through, the config in effect, and
the status board; and the hooks the server calls on every feature.

Features never import `server.py` (it imports them): `server.py` builds them, holds each
as a named attribute, and wires every LSP method and command to one of them."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from tinyarms import protocol

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import Config

log = logging.getLogger(__name__)


class Settings:
    """The config in effect (the config feature sets it) and whether the first load is done."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self.loaded = asyncio.Event()  # set once the first load is done (good or not)

    async def wait_loaded(self, timeout: float = 120.0) -> Config | None:
        await asyncio.wait_for(self.loaded.wait(), timeout=timeout)
        return self.config

    async def require(self, timeout: float = 120.0) -> Config:
        """The config, or the error a request gets while the config files have errors."""
        config = await self.wait_loaded(timeout)
        if config is None:
            raise RuntimeError("tinyarms: the config has errors; fix them to ask (see the diagnostics)")
        return config


class Status:
    """The latest completion, decision and model state, and the `tinyarms/status` notification."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.last: dict[str, dict[str, Any]] = {}

    def notify(self, kind: str, payload: dict[str, Any]) -> None:
        """Remember the latest `kind` event and tell the editor's status bar."""
        self.last[kind] = payload
        try:
            self.server.protocol.notify(protocol.STATUS_NOTIFICATION, {"kind": kind, **payload})
        except Exception:  # the transport may be closing; status is best effort
            log.debug("status notification not sent", exc_info=True)


class Feature:
    """Override the hooks you need. The server calls each hook on every feature, in the
    order server.py lists them, and logs (never propagates) a hook's exception."""

    def __init__(self, server: LanguageServer, settings: Settings, status: Status) -> None:
        self.server = server
        self.settings = settings
        self.status = status

    async def initialized(self) -> None:
        """The client is ready: start background work (model loading, watchers)."""

    def config_changed(self, config: Config) -> None:
        """A new valid config is in effect."""

    def document_opened(self, params: types.DidOpenTextDocumentParams) -> None: ...

    def document_changed(self, params: types.DidChangeTextDocumentParams) -> None: ...

    def document_saved(self, params: types.DidSaveTextDocumentParams) -> None: ...

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None: ...

    def shutdown(self) -> None:
        """Stop background work and child processes."""

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """Code actions this feature offers for a range (textDocument/codeAction)."""
        return []
