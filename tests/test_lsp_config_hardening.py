"""Config files that used to silence the server, and workspace trust, over LSP (both client presets).

A 600-deep array in `.tinyarms.toml` or `pyproject.toml` raised RecursionError outside the
config's error handling: no config, no problems, and the watcher and poller died, so fixing
the file did nothing until a restart. Now it is a diagnostic at the file, the last good
config stays, and the next fix is picked up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

from test_lsp_config import notify_file_changed, settle, show_config, wait_until

DEEP = "x = " + "[" * 600 + "]" * 600 + "\n"


async def test_deep_file_is_a_diagnostic_and_fixing_it_reloads(
    lsp_factory: Callable[..., Any], workspace: Path
) -> None:
    (workspace / "pyproject.toml").write_text("[project]\nname = 'x'\n" + DEEP)  # not ours: no effect
    lsp = await lsp_factory()
    shown = await show_config(lsp)
    assert shown["config"] is not None and shown["problems"] == []
    ws_file = workspace / ".tinyarms.toml"
    ws_file.write_text('[roles.chat]\ntier = "local"\n')
    notify_file_changed(lsp, ws_file)
    await settle(lsp, ("roles", "chat", "tier"), "local", timeout=30)

    ws_file.write_text(DEEP)
    notify_file_changed(lsp, ws_file)
    uri = ws_file.as_uri()
    await wait_until(lambda: bool(lsp.diagnostics.get(uri)), timeout=30, message=lambda: str(lsp.diagnostics))
    [diagnostic] = lsp.diagnostics[uri]
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    shown = await show_config(lsp)
    assert shown["config"]["roles"]["chat"]["tier"]["value"] == "local"  # the last good config
    assert shown["using_last_good"] and shown["problems"]

    ws_file.write_text(
        '[roles.chat]\ntier = "local-small"\n[tiers.local-small]\nprovider = "llama-cpp"\n'
        'model = "embedded:smollm2-135m"\n'
    )
    notify_file_changed(lsp, ws_file)
    await settle(lsp, ("roles", "chat", "tier"), "local-small", timeout=30)
    await wait_until(
        lambda: len(lsp.diagnostics.get(uri, [None])) == 0, timeout=30, message=lambda: str(lsp.diagnostics)
    )


async def test_untrusted_redirect_is_a_warning_at_its_line(
    lsp_factory: Callable[..., Any], workspace: Path, user_config: Path
) -> None:
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text('[roles.chat]\ntier = "local"\nescalate_to = []\n[budgets]\ndaily_usd = 3.0\n')
    ws_file = workspace / ".tinyarms.toml"
    ws_file.write_text('# cloned\n[roles.chat]\ntier = "cloud-fast"\n\n[budgets]\ndaily_usd = 0.0\n')
    # "false" is a string, not trust: the extension sends a real boolean.
    lsp = await lsp_factory(initialization_options={"workspaceTrusted": "false"})
    shown = await settle(lsp, ("roles", "chat", "tier"), "local")
    assert shown["trusted"] is False
    assert shown["config"]["budgets"]["daily_usd"]["value"] == 3.0
    uri = ws_file.as_uri()
    await wait_until(lambda: len(lsp.diagnostics.get(uri, [])) == 2, message=lambda: str(lsp.diagnostics))
    lines = sorted(d.range.start.line for d in lsp.diagnostics[uri])
    assert lines == [2, 5]  # 0-based: `tier = ...` and `daily_usd = ...`
    assert all(d.severity == types.DiagnosticSeverity.Warning for d in lsp.diagnostics[uri])


async def test_editor_trust_true_lets_the_workspace_choose(
    lsp_factory: Callable[..., Any], workspace: Path, user_config: Path
) -> None:
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text('[roles.chat]\ntier = "local"\nescalate_to = []\n')
    (workspace / ".tinyarms.toml").write_text('[roles.chat]\ntier = "cloud-fast"\n')
    lsp = await lsp_factory(initialization_options={"workspaceTrusted": True})
    shown = await settle(lsp, ("roles", "chat", "tier"), "cloud-fast")
    assert shown["trusted"] is True
