"""Autocomplete that knows the project, over LSP with the real embedded model, for both
client presets: context from another open file, the cap on that context with 200 open
files, and acceptance feedback recorded and shown by `tinyarms stats`.

One server per client preset for the module (the model loads once per server).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import CLIENTS, capabilities, isolated_env, run_tinyarms, start_client
from test_autocomplete_lsp import end_of, model_status, open_doc, vscode_inline_caps, wait_ready

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Generous budget: what is checked is the text, not the speed (see scripts/bench_autocomplete.py).
SETTINGS = {"roles": {"autocomplete": {"max_latency_ms": 60000, "prefill": False}}}
CONTEXT_TOKENS = 512  # the default cap

HEADERS = '''"""Parsing and formatting of mail headers."""


def parse_header(line: str) -> tuple[str, str]:
    """Split a "Name: value" header line into the name and the value."""
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def format_header(name: str, value: str) -> str:
    """Join a name and a value into a "Name: value" header line."""
    return f"{name}: {value}"
'''
# A call the model cannot know from this file alone: it answers `get_name_and_value(raw_line)`.
MAIN = "import headers\n\n\ndef handle(raw_line):\n    name, value = headers."


class Session:
    def __init__(self, lsp: LanguageClient, client: str, workspace: Path, env: dict[str, str]) -> None:
        self.lsp, self.client, self.workspace, self.env = lsp, client, workspace, env

    async def complete(self, uri: str, position: types.Position) -> tuple[str, types.Command | None]:
        """The suggestion (the text after the cursor's word start) and the item's command."""
        if self.client == "neovim":
            result = await self.lsp.text_document_completion_async(
                types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
            )
            assert isinstance(result, types.CompletionList)
            if not result.items:
                return "", None
            item = result.items[0]
            assert isinstance(item.text_edit, types.TextEdit)
            return item.text_edit.new_text, item.command
        inline = await self.lsp.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position,
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            )
        )
        assert isinstance(inline, types.InlineCompletionList)
        if not inline.items:
            return "", None
        item = inline.items[0]
        return str(item.insert_text), item.command

    async def command(self, name: str, *arguments: Any) -> Any:
        return await self.lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(arguments))
        )

    async def settings(self, autocomplete: dict[str, Any]) -> None:
        """Editor settings, as a client sends them on a change."""
        merged = {"roles": {"autocomplete": {**SETTINGS["roles"]["autocomplete"], **autocomplete}}}
        self.lsp.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"tinyarms": merged}))

    async def context_of(self, uri: str, **expected: Any) -> dict[str, Any]:
        """The context status once `uri`'s block is built (and matches `expected`)."""
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            context = (await model_status(self.lsp)).get("context") or {}
            built = context.get("active") == uri and context.get("active_built")
            if built and all(context.get(k) == v for k, v in expected.items()):
                return dict(context)
            assert asyncio.get_running_loop().time() < deadline, context
            await asyncio.sleep(0.1)


async def start_session(client: str, tmp_path_factory: pytest.TempPathFactory, settings: dict[str, Any]) -> Session:
    """A server for `client` (its preset's capabilities; VS Code's with inline completion)
    in a fresh workspace and home, its model ready."""
    tmp = tmp_path_factory.mktemp(client)
    workspace = tmp / "workspace"
    workspace.mkdir()
    env = isolated_env(tmp / "home")
    caps = vscode_inline_caps() if client == "visual-studio-code" else capabilities(client)
    lsp = await start_client(client, workspace, env, initialization_options=settings, caps=caps)
    await wait_ready(lsp)
    return Session(lsp, client, workspace, env)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    started = await start_session(str(request.param), tmp_path_factory, SETTINGS)
    yield started
    await started.lsp.shutdown_session()


async def test_a_call_uses_the_name_another_open_file_defines(session: Session) -> None:
    headers = session.workspace / "headers.py"
    headers.write_text(HEADERS)
    open_doc(session.lsp, headers, HEADERS)
    main = session.workspace / "main.py"
    main.write_text(MAIN)

    # Without context: the model guesses a name, and not the one headers.py defines.
    await session.settings({"context": False})
    deadline = asyncio.get_running_loop().time() + 30
    while (await model_status(session.lsp)).get("context", {}).get("enabled"):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    uri = open_doc(session.lsp, main, MAIN)
    without, _ = await session.complete(uri, end_of(MAIN))
    assert without.strip() and "parse_header" not in without, without

    # With context: headers.py's chunk and the definition `import headers` brings in.
    await session.settings({"context": True})
    context = await session.context_of(uri, enabled=True)
    assert "headers.py" in context["active_files"], context
    with_context, _ = await session.complete(uri, end_of(MAIN))
    assert "parse_header(" in with_context, with_context
    state = await model_status(session.lsp)
    assert state["context"]["last_used_tokens_estimate"] > 0


async def test_context_stays_under_its_cap_with_200_open_files(session: Session) -> None:
    folder = session.workspace / "many"
    folder.mkdir()
    for index in range(200):
        text = "".join(f"def helper_{index}_{n}(value):\n    return value * {index} + {n * 7}\n\n\n" for n in range(12))
        path = folder / f"module_{index}.py"
        path.write_text(text)
        open_doc(session.lsp, path, text)
    text = "import os\n\nvalue = helper_"
    path = session.workspace / "uses_many.py"
    uri = open_doc(session.lsp, path, text)
    context = await session.context_of(uri)
    assert context["chunks"] == 16  # the ring buffer is full, and no bigger
    # Only the file the user ends up in gets its block built now, not the 200 opened before it.
    assert context["documents"] < 20, context
    assert 0 < context["active_tokens_estimate"] <= CONTEXT_TOKENS
    suggestion, _ = await session.complete(uri, end_of(text))
    state = await model_status(session.lsp)
    # The real tokenizer's count of the whole prompt: within the block's cap plus this tiny
    # file (the estimate, 3 characters a token, is an upper bound for code), and the
    # other files' context is really in it.
    prompt_tokens = state["last_generation"]["prompt_tokens"]
    assert 150 < prompt_tokens <= CONTEXT_TOKENS + 32, state["last_generation"]


async def test_feedback_is_recorded_and_shown_by_stats(session: Session, tmp_path: Path) -> None:
    await session.settings({"context": False})  # short prompts: this is about the records
    events = [("accepted", None), ("partial", 3), ("dismissed", None)]
    ids = []
    for index, (event, accepted_length) in enumerate(events):
        text = f"import json\n\n\ndef load_{index}(path):\n    with open(path) as f:\n        return json."
        uri = open_doc(session.lsp, tmp_path / f"feedback_{index}.py", text)
        suggestion, command = await session.complete(uri, end_of(text))
        assert suggestion and command is not None, suggestion
        assert command.command == "tinyarms.autocomplete.feedback"
        assert command.arguments and command.arguments[0]["event"] == "accepted"
        completion_id = command.arguments[0]["id"]
        ids.append(completion_id)
        if event == "accepted":
            result = await session.command(command.command, *command.arguments)  # what the editor runs
        else:
            await session.command(command.command, {"id": completion_id, "event": "shown"})
            arguments: dict[str, Any] = {"id": completion_id, "event": event}
            if accepted_length is not None:
                arguments["accepted_length"] = accepted_length
            result = await session.command(command.command, arguments)
        assert result["recorded"] is True, result

    # Bad input: a clear error naming the field; an unknown id is answered, not recorded.
    with pytest.raises(Exception, match="event"):
        await session.command("tinyarms.autocomplete.feedback", {"id": ids[0], "event": "liked"})
    with pytest.raises(Exception, match="accepted_length"):
        await session.command("tinyarms.autocomplete.feedback", {"id": ids[0], "event": "partial"})
    unknown = await session.command("tinyarms.autocomplete.feedback", {"id": "nope", "event": "accepted"})
    assert unknown["recorded"] is False and "unknown" in unknown["reason"]

    records = [
        json.loads(line)
        for line in (Path(session.env["XDG_STATE_HOME"]) / "tinyarms" / "autocomplete.jsonl").read_text().splitlines()
    ]
    mine = [r for r in records if r["id"] in ids]
    assert {r["event"] for r in mine} == {"accepted", "shown", "partial", "dismissed"}
    assert all(r["model"] == "embedded:gemma3-270m" and r["source"] and r["length"] > 0 for r in mine)
    assert all("text" not in r for r in mine)  # lengths only, unless feedback_text is on
    partial = next(r for r in mine if r["event"] == "partial")
    assert partial["accepted_length"] == min(3, partial["length"])

    stats = run_tinyarms(session.env, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    summary = json.loads(stats.stdout)["autocomplete"]["models"]["embedded:gemma3-270m"]
    assert summary["shown"] >= 3 and summary["accepted"] >= 1 and summary["partial"] >= 1
    assert summary["dismissed"] >= 1
    table = run_tinyarms(session.env, "stats")
    assert "embedded:gemma3-270m" in table.stdout and "rate" in table.stdout, table.stdout
