"""The tinyarms language server: the one place that wires LSP methods to features.

Read top to bottom: the server class, the feature list, then every LSP method
tinyarms answers. Features hold the logic; handlers here only dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from tinyarms import __version__, protocol
from tinyarms.config import Config
from tinyarms.features.agent import AgentFeature
from tinyarms.features.autocomplete import TRIGGER_CHARACTERS, AutocompleteFeature
from tinyarms.features.base import Feature
from tinyarms.features.commands import CommandsFeature
from tinyarms.features.config import ConfigFeature, deep_merge
from tinyarms.logs import ClientLogHandler

log = logging.getLogger(__name__)


class TinyarmsServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("tinyarms", __version__)
        self.features: list[Feature] = []
        # The last completion and the last routed decision, by kind (see protocol.py).
        self.last_status: dict[str, dict[str, Any]] = {}
        self.config_feature = ConfigFeature(self)
        self.add_feature(self.config_feature)

    @property
    def config(self) -> Config | None:
        return self.config_feature.config

    def add_feature(self, feature: Feature) -> None:
        self.features.append(feature)
        for name, handler in feature.commands().items():
            self.command(name)(_command_handler(handler))

    def each_feature(self, hook: str, *args: Any) -> None:
        """Call a hook on every feature; one failing feature never stops the others."""
        for feature in self.features:
            try:
                getattr(feature, hook)(*args)
            except Exception:
                log.exception("feature %s failed in %s", type(feature).__name__, hook)

    def notify_config_changed(self, config: Config) -> None:
        self.each_feature("config_changed", config)

    def notify_status(self, kind: str, payload: dict[str, Any]) -> None:
        """Remember the latest `kind` event (completion, decision) and tell the editor's status bar."""
        self.last_status[kind] = payload
        try:
            self.protocol.notify(protocol.STATUS_NOTIFICATION, {"kind": kind, **payload})
        except Exception:  # the transport may be closing; status is best effort
            log.debug("status notification not sent", exc_info=True)


def _command_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def run(ls: TinyarmsServer, *args: Any) -> Any:
        result = handler(*args)
        if hasattr(result, "__await__"):
            result = await result
        return result

    return run


# Every feature besides config, in the order their hooks run.
# The agent (features/agent.py): tinyarms.agent, tinyarms.agent.cancel, tinyarms.agent.undo.
FEATURES: tuple[type[Feature], ...] = (AutocompleteFeature, CommandsFeature, AgentFeature)


def register_features(server: TinyarmsServer) -> None:
    for feature_class in FEATURES:
        server.add_feature(feature_class(server))


def create_server() -> TinyarmsServer:
    server = TinyarmsServer()
    register_features(server)

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

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TinyarmsServer, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings.get("tinyarms") if isinstance(params.settings, dict) else None
        if isinstance(settings, dict):
            ls.config_feature.inputs.editor_settings = deep_merge(ls.config_feature.init_settings, settings)
        else:
            await ls.config_feature.pull_editor_settings()
        ls.config_feature.reload("editor settings changed")

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: TinyarmsServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.config_feature.files_changed(params)

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

    # -- autocomplete (features/autocomplete.py) --
    autocomplete = next(f for f in server.features if isinstance(f, AutocompleteFeature))

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: TinyarmsServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        return await autocomplete.inline_completion(params)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS))
    async def completion(ls: TinyarmsServer, params: types.CompletionParams) -> types.CompletionList:
        return await autocomplete.completion(params)

    return server
