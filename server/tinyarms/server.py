"""The tinyarms language server: the one place that wires every LSP method and command.

Read top to bottom: the server class holds each feature as a named attribute; then
`create_server` wires the lifecycle, documents, configuration, and one block per
feature with its LSP methods and its commands (names in protocol.py, argument shapes
typed there: a wrong shape is a JSON-RPC InvalidParams error naming the field).
Features hold the logic and never import this module; handlers here only dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from tinyarms import __version__, jsonrpc, protocol
from tinyarms.config import Config
from tinyarms.features.agent import AgentFeature
from tinyarms.features.ask import AskFeature
from tinyarms.features.autocomplete import TRIGGER_CHARACTERS, AutocompleteFeature
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.features.chat import ChatFeature
from tinyarms.features.config import ConfigFeature
from tinyarms.features.config_editing import ConfigEditingFeature
from tinyarms.features.documents import Documents
from tinyarms.features.edit import EditFeature
from tinyarms.logs import ClientLogHandler

log = logging.getLogger(__name__)

CODE_ACTION_WAIT_S = 10.0  # the first config load takes about 50 ms; a lightbulb never waits longer than this


class TinyarmsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tinyarms", __version__, protocol_cls=jsonrpc.TinyarmsProtocol)
        self.settings = Settings()
        self.status = Status(self)
        self.config_feature = ConfigFeature(self, self.settings, self.status, on_change=self.config_changed)
        self.autocomplete = AutocompleteFeature(self, self.settings, self.status)
        self.ask = AskFeature(self, self.settings, self.status)
        self.documents = Documents(self, self.settings, self.status)
        self.chat = ChatFeature(
            self, self.settings, self.status, self.ask.routing, self.documents, recent=self.ask.recent
        )  # one memory of recent requests: feedback and tinyarms.reask name chat answers too
        self.edit = EditFeature(self, self.settings, self.status, self.ask.routing, self.documents)
        self.agent = AgentFeature(self, self.settings, self.status)
        # No hooks: it reads the open buffer and the config feature's result on each request.
        self.config_editing = ConfigEditingFeature(self, self.settings, self.status, lambda: self.config_feature.result)

    # Transports: pygls' own, with the read loop of jsonrpc.py (bounded, every request answered).
    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        jsonrpc.run_stdio(self, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer)

    def start_tcp(self, host: str, port: int) -> None:
        jsonrpc.run_tcp(self, host, port)

    @property
    def features(self) -> list[Feature]:
        """Every feature, in the order their hooks run (config first: the others read it)."""
        return [self.config_feature, self.autocomplete, self.ask, self.documents, self.chat, self.edit, self.agent]

    def each_feature(self, hook: str, *args: Any) -> None:
        """Call a hook on every feature; one failing feature never stops the others."""
        for feature in self.features:
            try:
                getattr(feature, hook)(*args)
            except Exception:
                log.exception("feature %s failed in %s", type(feature).__name__, hook)

    def config_changed(self, config: Config) -> None:
        for feature in self.features[1:]:  # the config feature is the one that changed it
            try:
                feature.config_changed(config)
            except Exception:
                log.exception("feature %s failed in config_changed", type(feature).__name__)


def _to_every_feature(hook: str) -> Callable[[TinyarmsServer, Any], None]:
    def handler(ls: TinyarmsServer, params: Any) -> None:
        ls.each_feature(hook, params)

    handler.__name__ = hook
    return handler


def create_server() -> TinyarmsServer:
    server = TinyarmsServer()

    # -- lifecycle ----------------------------------------------------------------------

    @server.feature(types.INITIALIZE)
    def initialize(ls: TinyarmsServer, params: types.InitializeParams) -> None:
        # Keep this fast: models load after `initialized`, in the background.
        ls.config_feature.set_initialize_params(params)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: TinyarmsServer, params: types.InitializedParams) -> None:
        logging.getLogger("tinyarms").addHandler(ClientLogHandler(ls))
        for feature in ls.features:
            try:
                await feature.initialized()
            except Exception:
                log.exception("feature %s failed to start", type(feature).__name__)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: TinyarmsServer, *args: Any) -> None:
        ls.each_feature("shutdown")

    # -- documents: every feature sees them (the Feature hook of the same name) ----------

    for method, hook in (
        (types.TEXT_DOCUMENT_DID_OPEN, "document_opened"),
        (types.TEXT_DOCUMENT_DID_CHANGE, "document_changed"),
        (types.TEXT_DOCUMENT_DID_SAVE, "document_saved"),
        (types.TEXT_DOCUMENT_DID_CLOSE, "document_closed"),
    ):
        server.feature(method)(_to_every_feature(hook))

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    async def code_action(ls: TinyarmsServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        # The actions come from the config's routes: a request that races the first load waits for it.
        with contextlib.suppress(asyncio.TimeoutError):
            await ls.settings.wait_loaded(timeout=CODE_ACTION_WAIT_S)
        actions: list[types.CodeAction] = []
        for feature in ls.features:
            try:
                actions += feature.code_actions(params)
            except Exception:
                log.exception("feature %s failed in code_actions", type(feature).__name__)
        return actions or None

    # -- config (features/config.py) -----------------------------------------------------

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TinyarmsServer, params: types.DidChangeConfigurationParams) -> None:
        await ls.config_feature.settings_changed(params)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: TinyarmsServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.config_feature.files_changed(params)

    # completion (below, shared with autocomplete) and hover in tinyarms' own TOML files
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: TinyarmsServer, params: types.HoverParams) -> types.Hover | None:
        return ls.config_editing.hover(params) if ls.config_editing.handles(params.text_document.uri) else None

    @server.command(protocol.SHOW_CONFIG)
    async def show_config(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.config_feature.show_config()

    @server.command(protocol.STATUS)
    async def status(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.config_feature.show_status()

    # -- autocomplete (features/autocomplete.py) -----------------------------------------

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: TinyarmsServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        return await ls.autocomplete.inline_completion(params)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))
    async def completion(ls: TinyarmsServer, params: types.CompletionParams) -> types.CompletionList:
        if ls.config_editing.handles(params.text_document.uri):  # tinyarms' own TOML: keys and values
            return ls.config_editing.completion(params)
        return await ls.autocomplete.completion(params)

    @server.feature(protocol.CURSOR_MOVED)
    def cursor_moved(ls: TinyarmsServer, params: Any) -> None:
        try:
            moved = protocol.notification_params(protocol.CURSOR_MOVED, params, protocol.CursorMovedParams)
        except JsonRpcInvalidParams as exc:
            log.warning("%s", exc)  # a notification has no error reply
            return
        ls.autocomplete.cursor_moved(moved)

    @server.command(protocol.TOGGLE_AUTOCOMPLETE)
    def toggle_autocomplete(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return ls.autocomplete.toggle(protocol.arguments(protocol.TOGGLE_AUTOCOMPLETE, args, protocol.ToggleArgs))

    @server.command(protocol.AUTOCOMPLETE_FEEDBACK)
    def autocomplete_feedback(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        feedback = protocol.arguments(protocol.AUTOCOMPLETE_FEEDBACK, args, protocol.FeedbackArgs)
        return ls.autocomplete.record_feedback(feedback)

    if os.environ.get("TINYARMS_ALLOW_CRASH") == "1":

        @server.command(protocol.CRASH_MODEL)
        async def crash_model(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
            return await ls.autocomplete.crash_model()

    # -- routed requests (features/ask.py over requests/) --------------------------------

    @server.command(protocol.ROUTE)
    async def route(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.ask.route(protocol.arguments(protocol.ROUTE, args, protocol.RouteArgs))

    @server.command(protocol.ASK)
    async def ask(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.ask.ask(protocol.arguments(protocol.ASK, args, protocol.AskArgs))

    @server.command(protocol.FEEDBACK)
    async def feedback(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.ask.feedback(protocol.arguments(protocol.FEEDBACK, args, protocol.AnswerFeedbackArgs))

    @server.command(protocol.REASK)
    async def reask(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.ask.reask(protocol.arguments(protocol.REASK, args, protocol.ReaskArgs))

    # -- chat (features/chat.py over requests/context, chat, conversations) --------------

    @server.command(protocol.CHAT)
    async def chat(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.chat.chat(protocol.arguments(protocol.CHAT, args, protocol.ChatArgs))

    @server.command(protocol.CHAT_LIST)
    def chat_list(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return ls.chat.list_conversations(protocol.arguments(protocol.CHAT_LIST, args, protocol.ChatListArgs))

    @server.command(protocol.CHAT_DELETE)
    def chat_delete(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return ls.chat.delete(protocol.arguments(protocol.CHAT_DELETE, args, protocol.ChatDeleteArgs))

    # -- edit (features/edit.py over requests/edit and edits/) ----------------------------

    @server.command(protocol.EDIT)
    async def edit(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.edit.edit(protocol.arguments(protocol.EDIT, args, protocol.EditArgs))

    # -- the agent (features/agent.py over agent/) ---------------------------------------

    @server.command(protocol.AGENT)
    async def agent(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.agent.run(protocol.arguments(protocol.AGENT, args, protocol.AgentArgs))

    @server.command(protocol.AGENT_CANCEL)
    def agent_cancel(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return ls.agent.cancel(protocol.arguments(protocol.AGENT_CANCEL, args, protocol.RunArgs))

    @server.command(protocol.AGENT_UNDO)
    async def agent_undo(ls: TinyarmsServer, *args: Any) -> dict[str, Any]:
        return await ls.agent.undo(protocol.arguments(protocol.AGENT_UNDO, args, protocol.RunArgs))

    return server
