"""The editor's side of the chat and edit tests, and the real model server they talk to.

`Editor` keeps the client's copies of open documents (text and version, as an editor does)
and answers `workspace/applyEdit` the way VS Code and Neovim do: a TextDocumentEdit whose
version is not the document's is rejected, CreateFile fails on an existing file unless told
otherwise, and an applied edit is followed by `didChange` with the next version. The edits
are applied here with plain offset arithmetic, independent of the server's `edits.diff`.

`write_config` puts chat, edit and agent on one OpenAI-compatible tier (the real model
server of `model_server.py`, or the fault server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import isolated_env, start_client


def _offset(text: str, position: types.Position) -> int:
    lines = text.split("\n")
    offset = sum(len(line) + 1 for line in lines[: position.line])
    if position.line >= len(lines):
        return len(text)
    return min(offset + position.character, offset + len(lines[position.line]))


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    spans = sorted(((_offset(text, e.range.start), _offset(text, e.range.end), e.new_text) for e in edits),
                   reverse=True)  # fmt: skip
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


class Editor:
    def __init__(self, lsp: LanguageClient) -> None:
        self.lsp = lsp
        self.documents: dict[str, tuple[int, str]] = {}
        self.requests: list[types.ApplyWorkspaceEditParams] = []

        @lsp.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            self.requests.append(params)
            return self.apply(params.edit)

    def open(self, path: Path, text: str | None = None, language: str = "python") -> str:
        if text is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        uri = path.as_uri()
        content = path.read_text()
        self.documents[uri] = (1, content)
        self.lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, content))
        )
        return uri

    def text(self, uri: str) -> str:
        return self.documents[uri][1]

    def version(self, uri: str) -> int:
        return self.documents[uri][0]

    def type(self, uri: str, text: str) -> None:
        """The user changes the document (the whole text, the next version)."""
        version = self.version(uri) + 1
        self.documents[uri] = (version, text)
        self.lsp.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def apply(self, edit: types.WorkspaceEdit) -> types.ApplyWorkspaceEditResult:
        changes: list[Any] = list(edit.document_changes or [])
        for uri, edits in (edit.changes or {}).items():
            changes.append(types.TextDocumentEdit(types.OptionalVersionedTextDocumentIdentifier(uri, None), edits))
        for change in changes:
            if isinstance(change, types.CreateFile):
                path = Path(types_uri_path(change.uri))
                options = change.options
                if path.exists() and not (options and (options.overwrite or options.ignore_if_exists)):
                    return types.ApplyWorkspaceEditResult(applied=False, failure_reason=f"{path.name} exists")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")
            elif isinstance(change, types.TextDocumentEdit):
                uri = change.text_document.uri
                edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
                if uri in self.documents:
                    version, text = self.documents[uri]
                    if change.text_document.version is not None and change.text_document.version != version:
                        return types.ApplyWorkspaceEditResult(applied=False, failure_reason="version mismatch")
                    self.type(uri, apply_text_edits(text, edits))
                else:
                    path = Path(types_uri_path(uri))
                    path.write_text(apply_text_edits(path.read_text(), edits))
            else:
                return types.ApplyWorkspaceEditResult(applied=False, failure_reason=f"unexpected {change!r}")
        return types.ApplyWorkspaceEditResult(applied=True)


@attrs.define
class Session:
    """A module's server for one client preset: the client, its editor side and its workspace."""

    lsp: LanguageClient
    editor: Editor
    workspace: Path
    env: dict[str, str] = attrs.field(factory=dict)  # its XDG dirs: the trace is under XDG_STATE_HOME


async def start_session(client: str, tmp_path_factory: Any, url: str, model: str) -> Session:
    """A server for `client` in a fresh home and workspace, chat/edit/agent on the tier at `url`."""
    env = isolated_env(tmp_path_factory.mktemp("home"))
    write_config(Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml", url, model)
    workspace = tmp_path_factory.mktemp("workspace")
    lsp = await start_client(client, workspace, env)
    return Session(lsp=lsp, editor=Editor(lsp), workspace=workspace, env=env)


def types_uri_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


async def execute(lsp: LanguageClient, command: str, argument: dict[str, Any], **params: Any) -> Any:
    return await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[argument], **params)
    )


def write_config(user_config: Path, url: str, model: str, *, max_tokens: int = 24, context_tokens: int = 1200,
                 timeout_s: float = 300) -> None:  # fmt: skip
    """chat, edit and agent on one OpenAI-compatible tier at `url`; no cache (answers must be fresh)."""
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        f"""
[tiers.team]
provider = "openai"
base_url = "{url}"
model = "{model}"
max_tokens = {max_tokens}
temperature = 0.0
timeout_s = {timeout_s}
max_retries = 0

[roles.chat]
tier = "team"
escalate_to = []
context_tokens = {context_tokens}

[roles.edit]
tier = "team"
escalate_to = []
context_tokens = {context_tokens}

[roles.agent]
tier = "team"
escalate_to = []

[roles.autocomplete]
enabled = false  # no local completion model loading beside the one under test

[reliability]
deadline_s = {timeout_s + 30}

[cache]
enabled = false
"""
    )
