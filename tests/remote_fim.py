"""Helpers for the remote-autocomplete tests: a real tinyarms over stdio whose autocomplete
role runs on a remote tier (falling back to the local embedded model), asked as VS Code
(inline completion) or Neovim (textDocument/completion) asks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from conftest import isolated_env, server_command
from test_autocomplete_lsp import end_of, model_status, open_doc, status, vscode_inline_caps, wait_ready

__all__ = ["end_of", "model_status", "open_doc", "status"]


def user_file(tier: dict[str, Any], role: dict[str, Any]) -> str:
    """A user config: tier `gpu` (remote) for autocomplete, `local` (embedded) its fallback."""

    def table(values: dict[str, Any]) -> str:
        return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())

    local = {"provider": "llama-cpp", "model": "embedded:gemma3-270m"}
    role = {"tier": "gpu", "escalate_to": ["local"], **role}
    return f"[tiers.local]\n{table(local)}\n[tiers.gpu]\n{table(tier)}\n[roles.autocomplete]\n{table(role)}"


async def start(tmp: Path, client: str, config_text: str) -> LanguageClient:
    env = isolated_env(tmp)
    config_file = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(config_text)
    lsp = await ClientServerConfig(server_command=server_command(), server_env=env).start()
    assert isinstance(lsp, LanguageClient)
    workspace = tmp / "workspace"
    workspace.mkdir(exist_ok=True)
    caps = vscode_inline_caps() if client == "visual-studio-code" else client_capabilities(client)
    lsp.initialize_result = await lsp.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=caps,
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="workspace")],
        )
    )
    lsp.client_name = client  # type: ignore[attr-defined]
    lsp.state_dir = Path(env["XDG_STATE_HOME"]) / "tinyarms"  # type: ignore[attr-defined]
    await wait_ready(lsp, timeout=300)
    return lsp


def _params(lsp: LanguageClient, uri: str, position: types.Position) -> tuple[str, Any]:
    document = types.TextDocumentIdentifier(uri=uri)
    if lsp.client_name == "visual-studio-code":  # type: ignore[attr-defined]
        context = types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic)
        params = types.InlineCompletionParams(text_document=document, position=position, context=context)
        return types.TEXT_DOCUMENT_INLINE_COMPLETION, params
    return types.TEXT_DOCUMENT_COMPLETION, types.CompletionParams(text_document=document, position=position)


def _text(result: Any) -> str:
    """The suggestion's text, whichever way the client asked."""
    if isinstance(result, types.InlineCompletionList):
        return str(result.items[0].insert_text) if result.items else ""
    assert isinstance(result, types.CompletionList), result
    return result.items[0].text_edit.new_text if result.items and result.items[0].text_edit else ""


async def suggest(lsp: LanguageClient, uri: str, position: types.Position) -> str:
    """Ask for a completion the way the client does and return its text ("" for none)."""
    return _text(await ask(lsp, uri, position))


async def ask(lsp: LanguageClient, uri: str, position: types.Position) -> Any:
    """The whole answer (an InlineCompletionList or a CompletionList)."""
    method, params = _params(lsp, uri, position)
    return await lsp.protocol.send_request_async(method, params)


def feedback_records(lsp: LanguageClient) -> list[dict[str, Any]]:
    """The server's acceptance records (autocomplete.jsonl in its state dir)."""
    path = lsp.state_dir / "autocomplete.jsonl"  # type: ignore[attr-defined]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def send(lsp: LanguageClient, uri: str, position: types.Position) -> asyncio.Future[Any]:
    """Ask without waiting (a keystroke the next one supersedes)."""
    method, params = _params(lsp, uri, position)
    return asyncio.wrap_future(lsp.protocol.send_request(method, params))


def type_text(lsp: LanguageClient, uri: str, version: int, at: types.Position, text: str) -> None:
    lsp.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)],
        )
    )


async def remote_status(lsp: LanguageClient) -> dict[str, Any]:
    remote = (await model_status(lsp)).get("remote")
    assert isinstance(remote, dict), remote
    return remote
