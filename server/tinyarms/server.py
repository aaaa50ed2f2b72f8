"""The tinyarms language server: the one place that wires every LSP method and command.

Read top to bottom: the server class holds each feature as a named attribute; then
`create_server` wires the lifecycle, documents, configuration, and one block per
feature with its LSP methods and its commands (names in protocol.py, argument shapes
typed there: a wrong shape is a JSON-RPC InvalidParams error naming the field).
Features hold the logic and never import this module; handlers here only dispatch.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from tinyarms import __version__, protocol
from tinyarms.config import Config
from tinyarms.features.agent import AgentFeature
from tinyarms.features.ask import AskFeature
from tinyarms.features.autocomplete import TRIGGER_CHARACTERS, AutocompleteFeature
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.features.chat import ChatFeature
from tinyarms.features.config import ConfigFeature
from tinyarms.features.documents import Documents
from tinyarms.features.edit import EditFeature
from tinyarms.logs import ClientLogHandler

log = logging.getLogger(__name__)


class TinyarmsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tinyarms", __version__)
        self.settings = Settings()
        self.status = Status(self)
        self.config_feature = ConfigFeature(self, self.settings, self.status, on_change=self.config_changed)
        self.autocomplete = AutocompleteFeature(self, self.settings, self.status)
        self.ask = AskFeature(self, self.settings, self.status)
        self.agent = AgentFeature(self, self.settings, self.status)
        self.documents = Documents(self, self.settings, self.status)
        self.chat = ChatFeature(self, self.settings, self.status, self.ask.routing, self.documents)
        self.edit = EditFeature(self, self.settings, self.status, self.ask.routing, self.documents)

    @property
    def features(self) -> list[Feature]:
        """Every feature, in the order their hooks run (config first: the others read it)."""
        return [self.config_feature, self.autocomplete, self.ask, self.agent, self.documents, self.chat, self.edit]

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

    # -- documents (every feature sees them) ---------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TinyarmsServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.each_feature("document_opened", params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TinyarmsServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.each_feature("document_changed", params)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TinyarmsServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.each_feature("document_saved", params)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TinyarmsServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.each_feature("document_closed", params)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    def code_action(ls: TinyarmsServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
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
        return await ls.autocomplete.completion(params)

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

    return server
