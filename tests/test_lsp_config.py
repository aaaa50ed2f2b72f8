"""End to end over stdio: the real server with VS Code and Neovim client capabilities."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient


async def show_config(lsp: LanguageClient) -> dict[str, Any]:
    result = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command="tinyarms.showConfig", arguments=[])
    )
    assert isinstance(result, dict)
    return result


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, message: Callable[[], str] = lambda: ""
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met in time {message()}")
        await asyncio.sleep(0.05)


async def settle(lsp: LanguageClient, key: tuple[str, ...], value: Any, timeout: float = 15.0) -> dict[str, Any]:
    """Poll showConfig until `key` has `value` (config reloads are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await show_config(lsp)
        node: Any = result["config"]
        for part in key:
            node = node[part]
        if node["value"] == value:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{'.'.join(key)} is {node}, expected {value!r}")
        await asyncio.sleep(0.1)


def notify_file_changed(lsp: LanguageClient, path: Path) -> None:
    """What a client that watches files sends; a Neovim-like client has the server poll instead."""
    if getattr(lsp, "registrations", None):
        lsp.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=path.as_uri(), type=types.FileChangeType.Changed)]
            )
        )


async def test_initialize_advertises_show_config(lsp_factory: Callable[..., Any]) -> None:
    lsp = await lsp_factory()
    info = lsp.initialize_result.capabilities  # type: ignore[attr-defined]
    assert info.execute_command_provider is not None
    assert "tinyarms.showConfig" in info.execute_command_provider.commands
    result = await show_config(lsp)
    assert result["config"]["roles"]["autocomplete"]["tier"]["value"] == "local"
    assert result["config"]["roles"]["chat"]["tier"]["source"].startswith("preset default (")
    assert "autocomplete  -> local (llama-cpp:" in result["summary"][0]


async def test_editor_settings_are_a_layer_with_their_own_source(
    lsp_factory: Callable[..., Any], user_config: Path
) -> None:
    user_config.parent.mkdir(parents=True)
    user_config.write_text('[roles.chat]\ntier = "local"\n')
    lsp = await lsp_factory(
        initialization_options={"roles": {"edit": {"tier": "local"}}},
        settings={"roles": {"agent": {"tier": "cloud-fast"}}},
    )
    result = await show_config(lsp)
    roles = result["config"]["roles"]
    assert roles["chat"]["tier"] == {"value": "local", "source": f"{user_config}:2"}
    assert roles["edit"]["tier"] == {"value": "local", "source": "editor settings"}
    assert roles["agent"]["tier"] == {"value": "cloud-fast", "source": "editor settings"}


async def test_broken_workspace_file_gives_diagnostic_and_keeps_last_good(
    lsp_factory: Callable[..., Any], workspace: Path
) -> None:
    config_file = workspace / ".tinyarms.toml"
    config_file.write_text('[roles.chat]\ntier = "local"\n')
    lsp = await lsp_factory()
    await settle(lsp, ("roles", "chat", "tier"), "local")

    config_file.write_text('[roles.chat]\ntier = "local"\n\n[roles.edit]\ntier = "local"\nescalte_to = []\n')
    notify_file_changed(lsp, config_file)
    uri = config_file.as_uri()
    await wait_until(lambda: bool(lsp.diagnostics.get(uri)))
    [diagnostic] = lsp.diagnostics[uri]
    assert diagnostic.range.start.line == 5  # 0-based: the line of `escalte_to`
    assert "did you mean 'escalate_to'" in diagnostic.message
    assert diagnostic.severity == types.DiagnosticSeverity.Error

    result = await show_config(lsp)
    assert result["using_last_good"] is True
    assert result["config"]["roles"]["chat"]["tier"]["value"] == "local"
    assert result["config"]["roles"]["edit"]["tier"]["value"] == "cloud-fast"  # the new edit did not apply
    await wait_until(lambda: any("keeping the last good config" in m.message for m in lsp.log_messages))

    # Fixing the file clears the diagnostic and applies the new value.
    config_file.write_text('[roles.chat]\ntier = "local"\n\n[roles.edit]\ntier = "local"\n')
    notify_file_changed(lsp, config_file)
    await settle(lsp, ("roles", "edit", "tier"), "local")
    await wait_until(
        lambda: uri in lsp.diagnostics and len(lsp.diagnostics[uri]) == 0, message=lambda: str(lsp.diagnostics)
    )


async def test_edited_file_is_reloaded(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    lsp = await lsp_factory()
    await settle(lsp, ("roles", "chat", "tier"), "cloud-fast")
    config_file = workspace / ".tinyarms.toml"
    config_file.write_text('[roles.chat]\ntier = "local"\n')
    notify_file_changed(lsp, config_file)
    result = await settle(lsp, ("roles", "chat", "tier"), "local")
    assert result["config"]["roles"]["chat"]["tier"]["source"] == f"{config_file}:2"


async def test_open_buffer_is_diagnosed_before_save(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    config_file = workspace / ".tinyarms.toml"
    config_file.write_text("")
    lsp = await lsp_factory()
    uri = config_file.as_uri()
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="toml", version=1, text='[roles.chat]\ntier = "nowhere"\n'
            )
        )
    )
    await wait_until(lambda: bool(lsp.diagnostics.get(uri)))
    [diagnostic] = lsp.diagnostics[uri]
    assert diagnostic.range.start.line == 1
    assert "unknown tier 'nowhere'" in diagnostic.message
    # Nothing was saved, so the config in effect is unchanged.
    result = await show_config(lsp)
    assert result["config"]["roles"]["chat"]["tier"]["value"] == "cloud-fast"


async def test_untrusted_workspace_warning_is_a_diagnostic(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    config_file = workspace / ".tinyarms.toml"
    config_file.write_text('[tiers.cloud-fast]\nbase_url = "http://attacker.invalid/v1"\n')
    lsp = await lsp_factory()
    uri = config_file.as_uri()
    await wait_until(lambda: bool(lsp.diagnostics.get(uri)))
    [diagnostic] = lsp.diagnostics[uri]
    assert diagnostic.severity == types.DiagnosticSeverity.Warning
    assert diagnostic.range.start.line == 1 and "not trusted" in diagnostic.message
    result = await show_config(lsp)
    assert result["config"]["tiers"]["cloud-fast"]["base_url"]["value"] == "https://api.openai.com/v1"


async def test_editor_trust_applies_workspace_endpoint(lsp_factory: Callable[..., Any], workspace: Path) -> None:
    (workspace / ".tinyarms.toml").write_text('[tiers.cloud-fast]\nbase_url = "http://127.0.0.1:9/v1"\n')
    lsp = await lsp_factory(initialization_options={"workspaceTrusted": True})
    result = await show_config(lsp)
    assert result["trusted"] is True
    assert result["config"]["tiers"]["cloud-fast"]["base_url"]["value"] == "http://127.0.0.1:9/v1"


async def test_status_names_roles_and_tiers(lsp_factory: Callable[..., Any]) -> None:
    lsp = await lsp_factory()
    status = await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command="tinyarms.status"))
    assert status["roles"]["autocomplete"]["tier"] == "local"
    assert status["tiers"]["local"] == {"provider": "llama-cpp", "model": "embedded:gemma3-270m"}
    assert status["last_completion"] is None and status["last_decision"] is None
