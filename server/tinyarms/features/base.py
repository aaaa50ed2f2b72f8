"""The shape every feature shares, and the guard that keeps one failing feature
from breaking a request or the server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.server import TinyarmsServer

log = logging.getLogger(__name__)


class Feature:
    """Override the hooks you need. The server calls each hook on every feature,
    in registration order, and logs (never propagates) a hook's exception."""

    def __init__(self, server: TinyarmsServer) -> None:
        self.server = server

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

    def commands(self) -> dict[str, Any]:
        """workspace/executeCommand names this feature answers, mapped to handlers."""
        return {}
