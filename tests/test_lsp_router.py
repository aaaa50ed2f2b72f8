"""The router over LSP (stdio, VS Code and Neovim capabilities): route, ask, code actions."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.test_lsp_config import notify_file_changed, wait_until


async def execute(lsp: LanguageClient, command: str, argument: dict[str, Any]) -> Any:
    return await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=[argument]))


def collect_status(lsp: LanguageClient) -> list[dict[str, Any]]:
    """The tinyarms/status notifications the server sends, as dicts."""
    seen: list[dict[str, Any]] = []

    @lsp.feature("tinyarms/status")
    def on_status(params: Any) -> None:
        if hasattr(params, "_asdict"):  # pygls hands unknown notifications' params over as namedtuples
            params = params._asdict()
        seen.append(params if isinstance(params, dict) else dict(vars(params)))

    return seen


async def test_route_ask_and_status(lsp_factory: Callable[..., Any]) -> None:
    lsp = await lsp_factory()
    statuses = collect_status(lsp)
    commands = lsp.initialize_result.capabilities.execute_command_provider.commands  # type: ignore[attr-defined]
    assert {"tinyarms.route", "tinyarms.ask"} <= set(commands)

    decision = await execute(lsp, "tinyarms.route", {"text": "why does this throw a KeyError: 'id'"})
    assert decision["route"] == "fix" and decision["role"] == "edit" and decision["reason"]
    await wait_until(lambda: any(s.get("kind") == "decision" for s in statuses))
    status = [s for s in statuses if s.get("kind") == "decision"][-1]
    assert status["route"] == "fix" and status["role"] == "edit" and status["elapsed_ms"] >= 0

    chat = await execute(lsp, "tinyarms.route", {"text": "thanks, have a nice weekend"})
    assert chat["route"] is None and chat["role"] == "chat"


    # Bad input is an answer or a clear error, and the server keeps going.
    empty = await execute(lsp, "tinyarms.route", {"text": ""})
    assert empty["stage"] == "fallback"
    try:
        await execute(lsp, "tinyarms.route", {"nope": 1})
        raise AssertionError("expected an error for a missing text")
    except Exception as exc:  # a JSON-RPC InvalidParams error that names the field
        assert "required field missing @ $.text" in str(exc)
    assert (await execute(lsp, "tinyarms.route", {"text": "x" * 100_000}))["role"]


def as_code_action(item: Any) -> dict[str, Any]:
    """The client's lsprotocol structures `Command | CodeAction` as a Command whose `command`
    is the str() of the nested command dict (cattrs turns any value into str); undo that."""
    if isinstance(item, types.CodeAction):
        command = item.command
        assert command is not None
        return {"kind": item.kind.value if item.kind else None,
                "command": {"command": command.command, "arguments": command.arguments}}  # fmt: skip
    assert isinstance(item, types.Command)
    nested = ast.literal_eval(item.command)
    return {"kind": None, "command": nested}  # the kind is lost in that conversion


async def test_code_actions_on_a_selection(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    lsp = await lsp_factory()
    source = workspace / "app.py"
    source.write_text("def add(a, b):\n    return a + b\n")
    uri = source.as_uri()
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, source.read_text()))
    )
    selection = types.Range(types.Position(0, 0), types.Position(1, 16))
    actions = await lsp.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), selection, types.CodeActionContext(diagnostics=[]))
    )
    assert actions is not None
    titles = [a.title for a in actions]  # type: ignore[union-attr]
    assert titles == [
        "tinyarms: Explain", "tinyarms: Review",  # chat: an answer in words
        "tinyarms: Refactor", "tinyarms: Fix", "tinyarms: Document", "tinyarms: Write tests",  # edit: a change
    ]  # fmt: skip
    explain = as_code_action(actions[0])
    assert explain["command"]["command"] == "tinyarms.chat"
    assert explain["command"]["arguments"][0]["text"] == "/explain"
    refactor = as_code_action(actions[2])
    assert refactor["kind"] in ("refactor.rewrite", None)
    argument = refactor["command"]["arguments"][0]
    assert argument["uri"] == uri and argument["range"]["end"] == {"line": 1, "character": 16}
    assert argument["instruction"] == "/refactor" and argument["version"] == 1
    assert refactor["command"]["command"] == "tinyarms.edit"  # run end to end in test_lsp_edit.py
    # The action's request routes by its slash command.
    decision = await execute(lsp, "tinyarms.route", {"text": argument["instruction"]})
    assert decision["route"] == "refactor" and decision["stage"] == "explicit"

    # No selection, no actions.
    empty = types.Range(types.Position(0, 0), types.Position(0, 0))
    none = await lsp.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), empty, types.CodeActionContext(diagnostics=[]))
    )
    assert not none


async def test_broken_routes_section_is_a_diagnostic(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    lsp = await lsp_factory()
    config_file = workspace / ".tinyarms.toml"
    config_file.write_text('[routes.review]\nrole = "chat"\nutterances = "not a list"\n')
    notify_file_changed(lsp, config_file)
    uri = config_file.as_uri()
    await wait_until(lambda: bool(lsp.diagnostics.get(uri)), timeout=20)
    [diagnostic] = lsp.diagnostics[uri]
    assert diagnostic.range.start.line == 2
    assert "utterances" in diagnostic.message
    # The router keeps working on the last good config.
    assert (await execute(lsp, "tinyarms.route", {"text": "/review"}))["route"] == "review"
