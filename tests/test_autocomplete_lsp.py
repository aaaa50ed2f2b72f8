"""Autocomplete end to end: the real server over stdio, the real embedded model in its
child process, VS Code (with inline completion) and Neovim client capabilities.

One server per client kind for the whole module, so the model loads once per server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from conftest import isolated_env, server_command

pytestmark = pytest.mark.asyncio(loop_scope="module")

PYTHON_PREFIX = "import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f."
# Generous budget in tests: what is checked is the text, not the speed (see the benchmark).
SETTINGS = {"roles": {"autocomplete": {"max_latency_ms": 20000}}}


def module_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**isolated_env(tmp), **extra}


def vscode_inline_caps() -> types.ClientCapabilities:
    """pytest-lsp's VS Code preset (1.65) predates inline completion; VS Code today declares it."""
    caps = client_capabilities("visual-studio-code")
    assert caps.text_document is not None
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities(dynamic_registration=True)
    return caps


async def start(tmp: Path, caps: types.ClientCapabilities, env_extra: dict[str, str] | None = None) -> LanguageClient:
    config = ClientServerConfig(server_command=server_command(), server_env=module_env(tmp, **(env_extra or {})))
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    lsp.statuses = []  # type: ignore[attr-defined]

    @lsp.feature("tinyarms/status")
    def on_status(params: Any) -> None:
        lsp.statuses.append(params)  # type: ignore[attr-defined]

    workspace = tmp / "workspace"
    workspace.mkdir(exist_ok=True)
    lsp.initialize_result = await lsp.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=caps,
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="workspace")],
            initialization_options=SETTINGS,
        )
    )
    await wait_ready(lsp)
    return lsp


async def status(lsp: LanguageClient) -> dict[str, Any]:
    result = await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command="tinyarms.status"))
    assert isinstance(result, dict)
    return result


async def model_status(lsp: LanguageClient) -> dict[str, Any]:
    model = (await status(lsp)).get("model") or {}
    return dict(model.get("autocomplete") or {})


async def wait_ready(lsp: LanguageClient, timeout: float = 120) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await model_status(lsp)
        if state.get("state") == "ready":
            return state
        assert state.get("state") != "failed", state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"model not ready: {state}")
        await asyncio.sleep(0.2)


def open_doc(lsp: LanguageClient, path: Path, text: str) -> str:
    uri = path.as_uri()
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
        )
    )
    return uri


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


async def inline(lsp: LanguageClient, uri: str, position: types.Position) -> types.InlineCompletionList:
    result = await lsp.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    return result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vscode(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LanguageClient]:
    lsp = await start(tmp_path_factory.mktemp("vscode"), vscode_inline_caps())
    yield lsp
    await lsp.shutdown_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def neovim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LanguageClient]:
    lsp = await start(tmp_path_factory.mktemp("neovim"), client_capabilities("neovim"))
    yield lsp
    await lsp.shutdown_session()


async def test_inline_completion_is_advertised_and_sensible(vscode: LanguageClient, tmp_path: Path) -> None:
    capabilities = vscode.initialize_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    state = await model_status(vscode)
    assert state["template"] == "prefix-only"  # neither embedded model has FIM tokens
    # The model loaded in the background, reported as $/progress (begin ... end).
    reports = [r for rs in vscode.progress_reports.values() for r in rs]
    assert any(isinstance(r, types.WorkDoneProgressBegin) and "loading" in r.title for r in reports)
    assert any(isinstance(r, types.WorkDoneProgressEnd) and r.message == "ready" for r in reports)

    text = PYTHON_PREFIX + "re"
    uri = open_doc(vscode, tmp_path / "read.py", text)
    result = await inline(vscode, uri, end_of(text))
    assert len(result.items) == 1
    item = result.items[0]
    insert = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
    # The item repeats the word being typed and its range covers it, so VS Code keeps it.
    assert insert.startswith("re") and len(insert) > 2, insert
    assert "\n" not in insert and insert == insert.rstrip()
    assert "read" in insert, insert
    line = len(text.split("\n")) - 1
    assert item.range == types.Range(
        start=types.Position(line, end_of(text).character - 2), end=types.Position(line, end_of(text).character)
    )
    # The status bar heard about it.
    await asyncio.sleep(0.1)
    statuses = [s for s in vscode.statuses if _get(s, "kind") == "completion"]  # type: ignore[attr-defined]
    assert statuses and _get(statuses[-1], "model").startswith("embedded:")
    last = (await status(vscode))["last_completion"]
    assert last["tier"] == "local" and last["elapsed_ms"] > 0


async def test_vscode_gets_no_duplicate_completion_items(vscode: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(vscode, tmp_path / "dup.py", PYTHON_PREFIX)
    result = await vscode.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=end_of(PYTHON_PREFIX))
    )
    assert isinstance(result, types.CompletionList) and not result.items


async def test_completion_for_a_client_without_inline_completion(neovim: LanguageClient, tmp_path: Path) -> None:
    text = "import sys\n\n\ndef main():\n    for arg in sys."
    uri = open_doc(neovim, tmp_path / "main.py", text)
    result = await neovim.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=end_of(text))
    )
    assert isinstance(result, types.CompletionList)
    assert result.is_incomplete  # the answer depends on the next keystroke
    assert len(result.items) == 1
    item = result.items[0]
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.range.end == end_of(text)
    assert item.text_edit.new_text.strip() and "argv" in item.text_edit.new_text, item.text_edit.new_text


async def test_typing_through_a_suggestion_answers_from_the_cache(vscode: LanguageClient, tmp_path: Path) -> None:
    text = PYTHON_PREFIX
    uri = open_doc(vscode, tmp_path / "typing.py", text)
    first = await inline(vscode, uri, end_of(text))
    suggestion = str(first.items[0].insert_text)
    assert len(suggestion) >= 2
    counts_before = (await model_status(vscode))["counts"]
    typed = suggestion[0]
    vscode.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(end_of(text), end_of(text)), text=typed)
            ],
        )
    )
    second = await inline(vscode, uri, end_of(text + typed))
    assert str(second.items[0].insert_text) == suggestion  # the same suggestion, shifted by one char
    counts = (await model_status(vscode))["counts"]
    assert counts.get("answer_cache", 0) == counts_before.get("answer_cache", 0) + 1


async def test_toggle_autocomplete(vscode: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(vscode, tmp_path / "toggle.py", PYTHON_PREFIX)

    async def toggle(*args: Any) -> dict[str, Any]:
        result = await vscode.workspace_execute_command_async(
            types.ExecuteCommandParams(command="tinyarms.toggleAutocomplete", arguments=list(args))
        )
        assert isinstance(result, dict)
        return result

    assert await toggle({"enabled": False}) == {"enabled": False}
    assert not (await inline(vscode, uri, end_of(PYTHON_PREFIX))).items
    assert (await model_status(vscode))["enabled"] is False
    assert await toggle() == {"enabled": True}  # no argument: flip
    assert (await inline(vscode, uri, end_of(PYTHON_PREFIX))).items


async def test_disabling_the_role_unloads_the_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("disabled")
    config = ClientServerConfig(
        server_command=server_command(),
        server_env=module_env(tmp, TINYARMS_ROLES__AUTOCOMPLETE__ENABLED="false"),
    )
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    try:
        await lsp.initialize_session(types.InitializeParams(capabilities=vscode_inline_caps()))
        deadline = asyncio.get_running_loop().time() + 30
        while (state := await model_status(lsp)).get("state") != "off":
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.1)
        uri = open_doc(lsp, tmp / "off.py", PYTHON_PREFIX)
        assert not (await inline(lsp, uri, end_of(PYTHON_PREFIX))).items
    finally:
        await lsp.shutdown_session()


async def test_cancellation_frees_the_model(vscode: LanguageClient, tmp_path: Path) -> None:
    # A long prompt (about 500 tokens, seconds of prompt processing on 2 cores).
    body = "".join(f"def function_{i}(value):\n    return value * {i} + {i * 7} - len(value)\n\n" for i in range(24))
    long_uri = open_doc(vscode, tmp_path / "long.py", body + "def ")
    before = (await model_status(vscode))["counts"].get("generation_cancelled", 0)
    request = vscode.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=long_uri),
            position=end_of(body + "def "),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        ),
        msg_id="long-request",
    )
    await asyncio.sleep(0.3)
    vscode.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-request"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(request), timeout=30)
    # The generation in the child stopped; a new request is answered with real text.
    short = "import json\n\ndata = json."
    uri = open_doc(vscode, tmp_path / "short.py", short)
    result = await asyncio.wait_for(inline(vscode, uri, end_of(short)), timeout=30)
    assert result.items and str(result.items[0].insert_text).strip()
    state = await model_status(vscode)
    assert state["counts"].get("generation_cancelled", 0) > before
    assert state["running"] in (True, False)


async def test_server_survives_a_model_crash(tmp_path_factory: pytest.TempPathFactory, vscode: LanguageClient) -> None:
    # The hidden crash command exists only with TINYARMS_ALLOW_CRASH=1.
    commands = vscode.initialize_result.capabilities.execute_command_provider.commands  # type: ignore[attr-defined]
    assert "tinyarms.test.crashModel" not in commands

    tmp = tmp_path_factory.mktemp("crash")
    lsp = await start(tmp, vscode_inline_caps(), {"TINYARMS_ALLOW_CRASH": "1"})
    try:
        uri = open_doc(lsp, tmp / "crash.py", PYTHON_PREFIX)
        result = await lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(command="tinyarms.test.crashModel")
        )
        assert result["crashed"] is True and "SIGSEGV" in result["error"], result
        # The server itself is alive and answers at once (empty while the model restarts).
        state = await model_status(lsp)
        assert state["crashes"] == 1
        await inline(lsp, uri, end_of(PYTHON_PREFIX))
        state = await wait_ready(lsp)
        assert state["crashes"] == 1
        after = await inline(lsp, uri, end_of(PYTHON_PREFIX))
        assert after.items and "read" in str(after.items[0].insert_text)
    finally:
        await lsp.shutdown_session()


async def test_bad_positions_and_documents_answer_without_crashing(vscode: LanguageClient, tmp_path: Path) -> None:
    text = "x = 1\ny = x +"
    uri = open_doc(vscode, tmp_path / "small.py", text)
    for position in (types.Position(1, 500), types.Position(40, 3), types.Position(0, 0)):
        result = await inline(vscode, uri, position)
        for item in result.items:
            assert item.range is not None and item.range.end.line <= 1
    unknown = await inline(vscode, (tmp_path / "never-opened.py").as_uri(), types.Position(0, 0))
    assert unknown.items == [] or not unknown.items
    # Binary content (NUL bytes, control characters) near the cursor: no completion, no crash.
    binary = "".join(chr(i) for i in range(256)) * 4 + "\nabc"
    binary_uri = open_doc(vscode, tmp_path / "blob.bin", binary)
    assert not (await inline(vscode, binary_uri, end_of(binary))).items
    # Astral characters: positions are UTF-16 units; the range still covers the typed word.
    emoji = "names = ['😀', 'b']\nfor name in na"
    emoji_uri = open_doc(vscode, tmp_path / "emoji.py", emoji)
    result = await inline(vscode, emoji_uri, end_of(emoji))
    for item in result.items:
        assert str(item.insert_text).startswith("na") and item.range is not None
        assert item.range.start == types.Position(1, 12)


async def test_a_ten_megabyte_document(vscode: LanguageClient, tmp_path: Path) -> None:
    line = "value = compute(value, 42)  # a line of filler text\n"
    text = line * (10_000_000 // len(line)) + "result = comp"
    uri = open_doc(vscode, tmp_path / "huge.py", text)
    result = await asyncio.wait_for(inline(vscode, uri, end_of(text)), timeout=60)
    assert result.items and str(result.items[0].insert_text).startswith("comp")
    middle = await asyncio.wait_for(inline(vscode, uri, types.Position(100_000, 8)), timeout=60)
    assert isinstance(middle, types.InlineCompletionList)


async def test_a_burst_of_requests_with_cancellations_leaks_nothing(vscode: LanguageClient, tmp_path: Path) -> None:
    text = "import collections\n\n\ndef count_words(words):\n    counts = collections."
    uri = open_doc(vscode, tmp_path / "burst.py", text)
    typed = "Counter(words)\n    return counts.most_common(10)"
    futures = []
    version = 1
    position = end_of(text)
    for index in range(100):
        char = typed[index % len(typed)]
        version += 1
        vscode.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(position, position), text=char)
                ],
            )
        )
        text += char
        position = end_of(text)
        msg_id = f"burst-{index}"
        futures.append(
            vscode.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=position,
                    context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                ),
                msg_id=msg_id,
            )
        )
        if index % 2:
            vscode.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    outcomes = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures), return_exceptions=True)
    answered = [o for o in outcomes if isinstance(o, types.InlineCompletionList)]
    assert len(answered) >= 50  # every request not cancelled is answered
    # Nothing keeps generating once the burst is over: the last generation ends at its line end.
    deadline = asyncio.get_running_loop().time() + 60
    while (state := await model_status(vscode))["running"]:
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.2)
    assert state["state"] == "ready"
    after = await inline(vscode, uri, end_of(text))
    assert isinstance(after, types.InlineCompletionList)


def _get(params: Any, key: str) -> Any:
    return params[key] if isinstance(params, dict) else getattr(params, key)


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("the crash test sends SIGSEGV", allow_module_level=True)
