"""The agent over LSP: the real server over stdio, each editor's capabilities, a scripted
OpenAI-compatible tier on 127.0.0.1. The test client plays the editor: it applies the
server's `workspace/applyEdit` requests to the files (as an editor that saves does)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.uris import to_fs_path

from conftest import capabilities
from faultserver import FaultServer
from tinyarms import protocol
from tinyarms.edits import workspace as edit_workspace


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def scripted(user_config: Path, http: FaultServer) -> FaultServer:
    http.reset()
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        f"""
[tiers.scripted]
provider = "openai"
base_url = "{http.url}"
model = "agent-lsp"
max_retries = 0
[roles.agent]
tier = "scripted"
[router]
enabled = false
"""
    )
    return http


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _offset(text: str, position: types.Position) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: position.line]) + position.character  # ASCII in these tests


def apply_to_disk(edit: types.WorkspaceEdit) -> None:
    """What an editor that saves does with a WorkspaceEdit (ASCII files)."""
    def edit_file(uri: str, edits: list[Any]) -> None:
        path = Path(to_fs_path(uri) or "")
        text = path.read_text() if path.exists() else ""
        for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
            text = text[: _offset(text, e.range.start)] + e.new_text + text[_offset(text, e.range.end) :]
        path.write_text(text)

    for change in edit.document_changes or []:
        if isinstance(change, types.CreateFile):
            path = Path(to_fs_path(change.uri) or "")
            assert not path.exists(), "CreateFile must never overwrite"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        elif isinstance(change, types.DeleteFile):
            Path(to_fs_path(change.uri) or "").unlink(missing_ok=True)
        elif isinstance(change, types.TextDocumentEdit):
            edit_file(change.text_document.uri, list(change.edits))
    for uri, edits in (edit.changes or {}).items():
        edit_file(uri, list(edits))


def as_editor(lsp: Any) -> list[types.ApplyWorkspaceEditParams]:
    applied: list[types.ApplyWorkspaceEditParams] = []

    @lsp.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied.append(params)
        apply_to_disk(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    return applied


async def test_agent_run_edits_through_apply_edit_reports_progress_and_undoes(
    lsp_factory: Callable[..., Any], scripted: FaultServer, workspace: Path, client_name: str
) -> None:
    (workspace / "calc.py").write_text("def mul(a, b):\n    return a + b\n")
    original = (workspace / "calc.py").read_bytes()
    scripted.script("agent-lsp", [
        call("read_file", path="calc.py"),
        call("edit_file", path="calc.py", start_line=2, end_line=2, content="    return a * b"),
        call("edit_file", path="test_calc.py", content="from calc import mul\n\nassert mul(2, 3) == 6\n"),
        {"text": "mul multiplies now; added a test."},
    ])  # fmt: skip
    lsp = await lsp_factory()
    applied = as_editor(lsp)
    token = "agent-progress-1"
    lsp.progress_reports[token] = []
    result = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(protocol.AGENT, [{"goal": "make mul multiply", "workDoneToken": token}])
    )
    report = result["report"]
    assert report["stop"] == "done", report["stopped"]
    assert report["answer"] == "mul multiplies now; added a test."
    assert [s["tier"] for s in report["steps"]] == ["scripted"] * 4
    assert {f["path"]: f["created"] for f in report["files"]} == {"calc.py": False, "test_calc.py": True}
    assert "+    return a * b" in next(f["diff"] for f in report["files"] if f["path"] == "calc.py")

    # Writes went through workspace/applyEdit: a hunk edit, and a CreateFile for the new file where the
    # client can create files (documentChanges + resourceOperations; Neovim's preset cannot: disk).
    creates = edit_workspace.can_create(capabilities(client_name))
    assert len(applied) == (2 if creates else 1)
    assert applied[0].edit.changes or applied[0].edit.document_changes
    if creates:
        assert any(isinstance(c, types.CreateFile) for c in applied[1].edit.document_changes or [])
    assert (workspace / "calc.py").read_text() == "def mul(a, b):\n    return a * b\n"
    assert (workspace / "test_calc.py").exists()

    # $/progress: the begin names the run, one report per step (and its start), the end says why it stopped.
    values = lsp.progress_reports[token]
    assert isinstance(values[0], types.WorkDoneProgressBegin) and values[0].message.startswith(f"run {result['run']}:")
    steps = [v.message for v in values if isinstance(v, types.WorkDoneProgressReport) and " on " in v.message]
    assert steps == ["step 1 on scripted: read_file", "step 2 on scripted: edit_file", "step 3 on scripted: edit_file",
                     "step 4 on scripted: no tool call"]  # fmt: skip
    assert isinstance(values[-1], types.WorkDoneProgressEnd) and "the model finished" in values[-1].message

    undone = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(protocol.AGENT_UNDO, [{"run": result["run"]}])
    )
    assert undone == {"restored": ["calc.py"], "deleted": ["test_calc.py"]}
    assert (workspace / "calc.py").read_bytes() == original
    assert not (workspace / "test_calc.py").exists()


async def test_cancel_stops_a_run_within_a_second(
    lsp_factory: Callable[..., Any], scripted: FaultServer, workspace: Path
) -> None:
    scripted.script("agent-lsp", [call("list_files"), {"text": "too late", "delay": 60}])
    lsp = await lsp_factory()
    token = "agent-progress-2"
    lsp.progress_reports[token] = []
    running = asyncio.ensure_future(lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(protocol.AGENT, [{"goal": "list things", "workDoneToken": token, "run": "r-cancel"}])
    ))  # fmt: skip
    deadline = time.monotonic() + 60
    while len(scripted.log) < 2 and time.monotonic() < deadline:  # the second model call is in flight
        await asyncio.sleep(0.05)
    assert len(scripted.log) == 2
    started = time.monotonic()
    cancelled = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(protocol.AGENT_CANCEL, [{"run": "r-cancel"}])
    )
    result = await asyncio.wait_for(running, 10)
    elapsed = time.monotonic() - started
    print(f"LSP cancel to result: {elapsed * 1000:.0f} ms")
    assert cancelled == {"cancelled": True}
    assert result["run"] == "r-cancel"
    assert result["report"]["stop"] == "cancelled" and len(result["report"]["steps"]) == 1
    assert elapsed < 1.0


async def test_without_apply_edit_the_agent_writes_to_disk(
    client_name: str, scripted: FaultServer, workspace: Path, env: dict[str, str]
) -> None:
    from conftest import start_client

    caps = capabilities(client_name)
    if caps.workspace is not None:
        caps.workspace.apply_edit = False
    scripted.script("agent-lsp", [call("edit_file", path="new.txt", content="hello\n"), {"text": "done"}])
    lsp = await start_client(client_name, workspace, env, caps=caps)
    try:
        applied = as_editor(lsp)
        result = await lsp.workspace_execute_command_async(
            types.ExecuteCommandParams(protocol.AGENT, [{"goal": "write hello"}])
        )
        assert result["report"]["stop"] == "done"
        assert applied == []
        assert (workspace / "new.txt").read_text() == "hello\n"
    finally:
        await lsp.shutdown_session()


async def test_bad_arguments_are_an_error_naming_the_field(
    lsp_factory: Callable[..., Any], scripted: FaultServer
) -> None:
    lsp = await lsp_factory()
    with pytest.raises(Exception, match="goal"):
        await lsp.workspace_execute_command_async(types.ExecuteCommandParams(protocol.AGENT, [{"uri": 3}]))
    with pytest.raises(Exception, match="no agent run 'nope'"):
        await lsp.workspace_execute_command_async(types.ExecuteCommandParams(protocol.AGENT_UNDO, [{"run": "nope"}]))
