"""Completion and hover in tinyarms' own TOML files, over stdio with VS Code and Neovim client
capabilities: keys, values (tiers, roles, providers, presets), and each key's documentation
with the value in effect and its source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from test_autocomplete_lsp import open_doc  # the server goes by the path, not the language id
from test_lsp_config import show_config

TEXT = (
    'extends = "default"\n\n[tiers.mine]\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n\n'
    '[roles.chat]\ntier = \nescalate_to = ["cloud-strong"]\n\n[tiers.local]\nn_threads = 1\n\n[\n'
)
# line 8: `tier = ` (cursor at the end); line 13: an empty line in [tiers.local]; line 14: a `[` being typed


async def complete(lsp: LanguageClient, uri: str, line: int, character: int) -> dict[str, types.CompletionItem]:
    result = await lsp.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, character)
        )
    )
    assert isinstance(result, types.CompletionList)
    return {item.label: item for item in result.items}


async def hover(lsp: LanguageClient, uri: str, line: int, character: int) -> str | None:
    result = await lsp.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, character))
    )
    if result is None:
        return None
    assert isinstance(result.contents, types.MarkupContent)
    return result.contents.value


async def test_completion_and_hover_in_the_workspace_and_user_files(
    lsp_factory: Callable[..., Any], workspace: Path, user_config: Path
) -> None:
    user_config.parent.mkdir(parents=True)
    user_text = '[roles.edit]\ntier = "local"\n\n[router]\nbackend = "onnx"\n'
    user_config.write_text(user_text)
    lsp = await lsp_factory()  # one server per client for the whole module: each start loads models
    await show_config(lsp)  # the config is loaded
    uri = open_doc(lsp, workspace / ".tinyarms.toml", TEXT)

    tiers = await complete(lsp, uri, 8, len("tier = "))
    assert {"local", "cloud-fast", "cloud-strong", "mine"} <= set(tiers)  # the preset's and the buffer's
    assert tiers["mine"].insert_text == '"mine"'
    quoted = await complete(lsp, uri, 8, len("tier = "))
    assert all(item.insert_text.startswith('"') for item in quoted.values())

    keys = await complete(lsp, uri, 13, 0)
    assert {"provider", "model", "n_ctx", "api_key_env", "base_url"} <= set(keys)
    assert keys["n_ctx"].detail == "integer" and keys["n_ctx"].insert_text == "n_ctx = "
    assert keys["provider"].detail == '"llama-cpp" | "openai" | "llama-server" | "anthropic"'
    assert "context size" in str(keys["n_ctx"].documentation)

    providers = await complete(lsp, uri, 3, len("provider = "))
    assert set(providers) == {"llama-cpp", "openai", "llama-server", "anthropic"}

    presets = await complete(lsp, uri, 0, len("extends = "))
    assert {"default", "local-only", "privacy", "ollama", "llama-server"} <= set(presets)

    headers = await complete(lsp, uri, 14, 1)
    assert {"[roles.chat]", "[tiers.cloud-fast]", "[tiers.mine]", "[router]", "[budgets]"} <= set(headers)

    tier_doc = await hover(lsp, uri, 9, 2)  # escalate_to under [roles.chat]
    assert tier_doc is not None
    assert "**roles.chat.escalate_to** (list of strings)" in tier_doc
    assert "tiers tried next" in tier_doc
    # The buffer is not saved: hover says what is in effect, and where it comes from.
    assert 'In effect: `["cloud-strong", "local"]` from preset default (' in tier_doc

    model_doc = await hover(lsp, uri, 5, 1)
    assert model_doc is not None and "**tiers.mine.model** (string)" in model_doc
    assert "Not set in the config in effect" in model_doc  # tier `mine` exists only in the unsaved buffer

    # The user file: the same help, and hover names the file and line a value comes from.
    uri = open_doc(lsp, user_config, user_text)
    doc = await hover(lsp, uri, 1, 1)
    assert doc is not None and "**roles.edit.tier** (string)" in doc
    assert f'In effect: `"local"` from {user_config}:2' in doc
    backends = await complete(lsp, uri, 4, len("backend = "))
    assert set(backends) == {"onnx-int8", "onnx", "torch"}
    header = await hover(lsp, uri, 3, 2)
    assert header is not None and "**router** (table)" in header and "routed" in header

    # Code files are not config: no hover from this feature.
    code = open_doc(lsp, workspace / "main.py", "x = 1\n")
    assert await hover(lsp, code, 0, 0) is None
